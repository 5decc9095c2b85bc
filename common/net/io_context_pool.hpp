#pragma once

#include <asio.hpp>
#include <memory>
#include <thread>
#include <vector>

namespace gwx {

/// N event loops, one thread each. A connection lives on one loop for its whole life.
/// run()/stop() are for the owning thread; loop(i) may be called from any thread.
class io_context_pool {
 public:
  explicit io_context_pool(std::size_t size);
  ~io_context_pool();
  io_context_pool(const io_context_pool&) = delete;
  io_context_pool& operator=(const io_context_pool&) = delete;

  /// Starts one thread per loop; returns at once.
  void start();
  /// Stops every loop and joins the threads.
  void stop();
  /// Stops the loops (as stop()) and destroys every handler still queued or waiting in them,
  /// with whatever those handlers own, now. The loops cannot run again. For an owner whose
  /// objects are reached from such handlers (a session kept alive by a posted task, say): call
  /// it before those objects go, or the handlers are destroyed only with the loops, after them.
  void discard_pending();

  std::size_t size() const { return contexts_.size(); }
  asio::io_context& loop(std::size_t i) { return *contexts_[i]; }

 private:
  /// An io_context whose services can be shut down (its queued handlers destroyed) before it is.
  class context : public asio::io_context {
   public:
    using asio::io_context::io_context;
    void discard_pending() { shutdown(); }
  };
  std::vector<std::unique_ptr<context>> contexts_;
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards_;
  std::vector<std::thread> threads_;
};

}  // namespace gwx
