#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "common/cluster/cluster_core.hpp"
#include "worker/sdk/event_runner.hpp"

namespace gwx::sdk {

/// The handler threads of a worker. Each client's events go to one thread (by a hash of its
/// client_id), in arrival order; each thread takes everything queued in one go, runs it, and
/// hands its output (commands, decisions, then one EventAck per link) to the network thread in
/// one batch.
///
/// dispatch() may be called from any thread (the network thread does); start() and stop() from
/// the owner's thread.
class handler_pool {
 public:
  handler_pool(std::size_t threads, handler& app, gateway_api& api, cluster::cluster_core& core);
  ~handler_pool();
  handler_pool(const handler_pool&) = delete;
  handler_pool& operator=(const handler_pool&) = delete;

  /// Starts the threads; events dispatched before wait for this.
  void start();
  /// Queues an event for its client's thread (moves from `event`). Dropped once stopping.
  void dispatch(const cluster::link_ref& link, link::v1::ClientEvent& event);
  /// Runs what is queued, then joins the threads. Idempotent.
  void stop();

  /// Waits until every event dispatched so far has run and its output (commands, decisions,
  /// acks) has been handed to the network thread; false at the deadline. Any thread but the
  /// handler threads.
  bool wait_idle(std::chrono::steady_clock::time_point deadline);
  /// Events dispatched and not yet run to the end (queued or running).
  std::size_t unfinished() const;
  /// Events run since construction.
  std::uint64_t handled() const { return handled_.load(std::memory_order_relaxed); }

  std::size_t size() const { return lanes_.size(); }

 private:
  struct queued_event {
    cluster::link_ref link;
    link::v1::ClientEvent event;
  };
  struct lane {
    mutable std::mutex mutex;
    std::condition_variable wake;
    /// Signalled when the lane becomes idle (queue empty, nothing running).
    std::condition_variable idle;
    std::vector<queued_event> queue;
    /// Events taken from the queue whose output has not been handed over yet.
    std::size_t running = 0;
    bool stopping = false;
    std::thread thread;
    std::unique_ptr<event_runner> runner;
  };

  void run(lane& l);

  cluster::cluster_core& core_;
  std::atomic<std::uint64_t> writer_seq_{0};
  std::atomic<std::uint64_t> handled_{0};
  std::vector<std::unique_ptr<lane>> lanes_;
  bool started_ = false;
};

}  // namespace gwx::sdk
