#include "common/bus/redis_asio.hpp"

#include <hiredis/async.h>

#include <memory>

namespace gwx::bus {
namespace {

/// Shared with every pending wait, so a wait that completes after hiredis freed the context
/// finds `ac` null and does nothing.
struct redis_watch : std::enable_shared_from_this<redis_watch> {
  redis_watch(asio::io_context& io, redisAsyncContext* c,
              std::function<void(redisAsyncContext*)> hook)
      : fd(io, c->c.fd), ac(c), after_read(std::move(hook)) {}

  asio::posix::stream_descriptor fd;
  redisAsyncContext* ac;
  std::function<void(redisAsyncContext*)> after_read;
  bool want_read = false;
  bool want_write = false;
  bool reading = false;
  bool writing = false;

  void arm_read() {
    if (reading || !want_read || ac == nullptr) {
      return;
    }
    reading = true;
    fd.async_wait(asio::posix::stream_descriptor::wait_read,
                  [self = shared_from_this()](std::error_code ec) {
                    self->reading = false;
                    if (ec || self->ac == nullptr || !self->want_read) {
                      return;
                    }
                    redisAsyncHandleRead(self->ac);  // may free the context (cleanup below)
                    if (self->ac != nullptr && self->after_read) {
                      self->after_read(self->ac);
                    }
                    self->arm_read();
                  });
  }

  void arm_write() {
    if (writing || !want_write || ac == nullptr) {
      return;
    }
    writing = true;
    fd.async_wait(asio::posix::stream_descriptor::wait_write,
                  [self = shared_from_this()](std::error_code ec) {
                    self->writing = false;
                    if (ec || self->ac == nullptr || !self->want_write) {
                      return;
                    }
                    redisAsyncHandleWrite(self->ac);
                    self->arm_write();
                  });
  }
};

using holder = std::shared_ptr<redis_watch>;

redis_watch& watch_of(void* data) {
  return **static_cast<holder*>(data);
}

}  // namespace

bool attach_redis_to_asio(asio::io_context& io, redisAsyncContext* ac,
                          std::function<void(redisAsyncContext*)> after_read) {
  if (ac == nullptr || ac->err != 0 || ac->ev.data != nullptr) {
    return false;
  }
  auto* h = new holder(std::make_shared<redis_watch>(io, ac, std::move(after_read)));
  ac->ev.data = h;
  ac->ev.addRead = [](void* data) {
    auto& w = watch_of(data);
    w.want_read = true;
    w.arm_read();
  };
  ac->ev.delRead = [](void* data) { watch_of(data).want_read = false; };
  ac->ev.addWrite = [](void* data) {
    auto& w = watch_of(data);
    w.want_write = true;
    w.arm_write();
  };
  ac->ev.delWrite = [](void* data) { watch_of(data).want_write = false; };
  ac->ev.cleanup = [](void* data) {
    auto* h = static_cast<holder*>(data);
    auto& w = **h;
    w.ac = nullptr;
    std::error_code ignored;
    w.fd.cancel(ignored);
    w.fd.release();  // hiredis closes the socket itself
    delete h;        // pending waits keep the watch alive until they run
  };
  return true;
}

}  // namespace gwx::bus
