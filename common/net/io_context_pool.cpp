#include "common/net/io_context_pool.hpp"

#include <stdexcept>

namespace gwx {

io_context_pool::io_context_pool(std::size_t size) {
  if (size == 0 || size > 256) {
    throw std::invalid_argument("thread count must be between 1 and 256");
  }
  for (std::size_t i = 0; i < size; ++i) {
    contexts_.push_back(std::make_unique<context>(1));
    guards_.push_back(asio::make_work_guard(*contexts_.back()));
  }
}

io_context_pool::~io_context_pool() {
  stop();
}

void io_context_pool::start() {
  for (auto& ctx : contexts_) {
    threads_.emplace_back([c = ctx.get()] { c->run(); });
  }
}

void io_context_pool::stop() {
  for (auto& ctx : contexts_) {
    ctx->stop();
  }
  for (auto& t : threads_) {
    if (t.joinable()) {
      t.join();
    }
  }
  threads_.clear();
}

void io_context_pool::discard_pending() {
  stop();
  for (auto& ctx : contexts_) {
    ctx->discard_pending();
  }
}

}  // namespace gwx
