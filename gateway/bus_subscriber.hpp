#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "common/bus/bus_message.hpp"
#include "common/bus/bus_url.hpp"
#include "common/logging.hpp"

namespace gwx::gateway {

/// How a gateway subscribes to the push bus.
struct bus_config {
  bus::bus_url url;
  /// Largest bus message taken; larger ones are refused (counted, logged) unparsed.
  std::size_t max_message = 1 << 20;
  /// This gateway's routing key for client-addressed commands (routed mode).
  std::string client_key;
  /// Names the gateway's queue (AMQP) so operators can tell whose it is.
  std::string gateway_id;
  /// Reconnect backoff (with jitter) after the broker went away.
  std::chrono::milliseconds reconnect_min{200};
  std::chrono::milliseconds reconnect_max{5000};
  /// Bytes the broker may queue for this gateway's AMQP queue (x-max-length-bytes; the oldest
  /// messages go first past it).
  std::size_t broker_queue_max_bytes = 64 << 20;
};

/// What the bus has done so far; read by /metrics and stats from any thread.
struct bus_counters {
  std::atomic<bool> connected{false};
  std::atomic<std::uint64_t> received{0};
  std::atomic<std::uint64_t> applied{0};
  std::atomic<std::uint64_t> rejected{0};
  /// Valid, but not handed to the loops: the hand-off was full (the loops are behind).
  std::atomic<std::uint64_t> dropped{0};
  std::atomic<std::uint64_t> connects{0};
  /// Routing keys bound to this gateway's queue at the broker now (routed mode).
  std::atomic<std::uint64_t> bindings{0};
  /// Rejections by bus::bus_error (index = enum value).
  std::array<std::atomic<std::uint64_t>, 6> rejected_by{};
};

/// The gateway's subscription to the push bus (Redis pub/sub, AMQP fanout or AMQP routed):
/// one thread of its own talks to the broker, parses each message into Gateway API commands
/// and hands them to `dispatch` (which runs them on the loops holding the clients). Bad
/// messages are counted and logged once per interval, never fatal; a lost broker is
/// reconnected with backoff and jitter, and subscriptions and bindings are made again.
///
/// start()/stop() from the owning thread; hold()/release() from any loop; counters() anywhere.
class bus_subscriber {
 public:
  /// Takes one parsed command; returns false when it could not be taken (hand-off full).
  /// Called on the bus thread.
  using dispatch_fn = std::function<bool(bus::bus_command&&)>;

  /// A subscriber for `config.url`'s kind. Nothing happens before start().
  static std::unique_ptr<bus_subscriber> make(bus_config config, dispatch_fn dispatch);

  virtual ~bus_subscriber();

  /// Starts the bus thread (connects in the background; the gateway serves meanwhile).
  void start();
  /// Stops the thread and closes the broker connection. Idempotent.
  void stop();

  /// Routed mode: one more loop holds a client with routing key `key` (`uid.x`, `group.y`);
  /// the first holder makes the queue bind it. Other modes: nothing. Any thread.
  void hold(const std::string& key);
  /// One loop fewer holds `key`; the last one makes the queue unbind it. Any thread.
  void release(const std::string& key);

  /// Sets config().client_key (known once the gateway bound its internal address); before
  /// start().
  void set_client_key(std::string key) { config_.client_key = std::move(key); }

  bool routed() const { return config_.url.kind == bus::bus_kind::amqp_routed; }
  const bus_config& config() const { return config_; }
  const bus_counters& counters() const { return counters_; }

 protected:
  bus_subscriber(bus_config config, dispatch_fn dispatch);

  /// The thread's body; returns once stopping() is true.
  virtual void run() = 0;
  /// Makes run() notice stop() or a binding change soon. Any thread.
  virtual void wake() = 0;

  bool stopping() const { return stopping_.load(std::memory_order_acquire); }
  /// One message from the broker (bus thread): parsed, counted, dispatched.
  void on_message(std::string_view payload);
  /// A message refused before parsing (e.g. too large to read).
  void reject(bus::bus_error error, const std::string& detail);
  /// Logs a broker problem at most once per interval (warning), with the redacted URL.
  void warn(const std::string& what);
  /// Counts and logs a change of the connection. `quiet`: a reconnect the subscriber made on
  /// purpose (to skip a message too large to read) is counted but not logged as a loss; the
  /// refusal's own line says it.
  void set_connected(bool up, bool quiet = false);

  /// Routed mode, bus thread: the keys whose binding must change (taken from the shared set),
  /// `all` and the client key included in the desired set from the start.
  struct binding_change {
    std::string key;
    bool bind = false;
  };
  std::vector<binding_change> take_binding_changes();
  /// After a reconnect: every desired key is to be bound again.
  std::vector<std::string> desired_keys();

  bus_config config_;
  bus_counters counters_;

 private:
  dispatch_fn dispatch_;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  bool started_ = false;

  std::mutex log_mutex_;
  log_throttle reject_log_;  ///< under log_mutex_
  log_throttle warn_log_;    ///< under log_mutex_

  std::mutex keys_mutex_;
  /// Key → loops holding it.
  std::unordered_map<std::string, unsigned> holders_;
  /// Keys whose holder count crossed zero since the bus thread last looked.
  std::unordered_set<std::string> dirty_;
};

}  // namespace gwx::gateway
