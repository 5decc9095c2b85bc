#pragma once

#include <asio.hpp>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

namespace gwx::gateway {

/// Work handed from one event loop to another in batches: the first task queued posts one
/// run to the target loop, which then runs everything queued by that time, in order. Under
/// load, many events or commands cross between loops for the price of one wake-up.
///
/// push() from the source loop (any thread, in fact); the tasks run on the target loop.
class loop_mailbox : public std::enable_shared_from_this<loop_mailbox> {
 public:
  explicit loop_mailbox(asio::io_context& target) : target_(target) {}

  void push(std::function<void()> task) {
    bool post = false;
    {
      std::lock_guard lock(mutex_);
      tasks_.push_back(std::move(task));
      post = !posted_;
      posted_ = true;
    }
    if (post) {
      asio::post(target_, [self = shared_from_this()] { self->run(); });
    }
  }

 private:
  void run() {
    {
      std::lock_guard lock(mutex_);
      running_.swap(tasks_);
      posted_ = false;
    }
    for (auto& task : running_) {
      task();
    }
    running_.clear();
  }

  asio::io_context& target_;
  std::mutex mutex_;
  std::vector<std::function<void()>> tasks_;
  std::vector<std::function<void()>> running_;  ///< target loop only
  bool posted_ = false;
};

}  // namespace gwx::gateway
