#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/bus/amqp_connection.hpp"
#include "common/bus/bus_message.hpp"
#include "common/bus/bus_url.hpp"
#include "common/logging.hpp"

struct redisContext;

namespace gwx::bus {

/// Publishes bus messages (Redis PUBLISH to the channel, or AMQP basic.publish to the exchange
/// with each message's routing key) from a thread of its own, with a queue bounded in bytes:
/// publish() never blocks, and past the bound a message is dropped and counted. A lost broker
/// is reconnected with backoff and jitter; what was being sent when it went away may be lost
/// (the bus is at-most-once).
///
/// Thread-safe: publish(), flush() and the counters from any thread; start()/stop() from the
/// owner.
class bus_publisher {
 public:
  /// `max_queue_bytes`: bytes of messages waiting to be sent.
  explicit bus_publisher(bus_url url, std::size_t max_queue_bytes = 16 << 20);
  ~bus_publisher();
  bus_publisher(const bus_publisher&) = delete;
  bus_publisher& operator=(const bus_publisher&) = delete;

  void start();
  /// Sends what is queued (waiting at most `flush_timeout`), drops (and counts) what is still
  /// queued then, and stops: a batch still being sent or awaiting its replies at the deadline
  /// has its connection cut (a broker that stopped reading would hold a send for ever), so it
  /// returns within `flush_timeout` plus a moment, unless a connection attempt is under way
  /// (bounded by its 5 s timeout). Idempotent.
  void stop(std::chrono::milliseconds flush_timeout = std::chrono::seconds(2));

  /// Queues messages; false (and counted as dropped) past the queue bound.
  bool publish(std::vector<bus_publication> messages);
  /// Waits until everything queued before the call was handed to the broker (or dropped);
  /// false when `timeout` passed first.
  bool flush(std::chrono::milliseconds timeout);

  const bus_url& url() const { return url_; }
  bool routed() const { return url_.kind == bus_kind::amqp_routed; }
  std::uint64_t published() const { return published_.load(std::memory_order_relaxed); }
  std::uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }
  bool connected() const { return connected_.load(std::memory_order_relaxed); }

 private:
  void run();
  /// Sends one batch on the open connection; false when the connection failed.
  bool send_redis(const std::vector<bus_publication>& batch);
  bool send_amqp(const std::vector<bus_publication>& batch);
  bool connect();
  void disconnect();
  /// False when the idle connection was closed by the broker (or is unusable).
  bool idle_connection_alive();
  /// The open connection's socket, -1 when none.
  int connection_fd() const;
  void warn(const std::string& what);
  /// Drops (and counts) everything queued, waking flush(); returns how many. Under mutex_.
  std::size_t drop_queued_locked();

  bus_url url_;
  std::size_t max_queue_bytes_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<bus_publication> queue_;
  std::size_t queued_bytes_ = 0;
  std::uint64_t enqueued_ = 0;  ///< under mutex_
  std::uint64_t done_ = 0;      ///< sent or dropped, under mutex_
  bool stopping_ = false;
  /// The socket of the batch being sent, -1 between batches (under mutex_): stop() shuts it
  /// down at the flush deadline. The bus thread closes it only after setting this back to -1.
  int sending_fd_ = -1;
  std::thread thread_;
  std::atomic<std::uint64_t> published_{0};
  std::atomic<std::uint64_t> dropped_{0};
  std::atomic<bool> connected_{false};
  log_throttle warn_log_;  ///< under mutex_

  // The bus thread's connection: one of these is open.
  redisContext* redis_ = nullptr;
  std::unique_ptr<amqp_connection> amqp_;
};

}  // namespace gwx::bus
