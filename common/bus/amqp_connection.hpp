#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "common/bus/bus_url.hpp"

struct amqp_connection_state_t_;

namespace gwx::bus {

/// One AMQP 0-9-1 connection (rabbitmq-c, blocking) with channel 1 open and the bus exchange
/// declared (non-durable: bus messages are not persisted), as both the gateways' subscriber and
/// the publishers use it. Every call blocks; use it from one thread. Errors are returned as a
/// one-line text that never contains the password.
class amqp_connection {
 public:
  amqp_connection() = default;
  ~amqp_connection() { close(); }
  amqp_connection(const amqp_connection&) = delete;
  amqp_connection& operator=(const amqp_connection&) = delete;

  /// Connects, logs in (with AMQP heartbeats every `heartbeat_s` seconds, 0: none), opens
  /// channel 1 and declares `url.exchange` (fanout or direct by url.kind). Empty on success,
  /// else why not.
  std::string open(const bus_url& url, std::chrono::milliseconds timeout, int heartbeat_s = 10);
  /// Closes the connection (politely when it is still up). Idempotent.
  void close();
  bool is_open() const { return state_ != nullptr; }

  /// The rabbitmq-c state, for calls this class does not wrap.
  amqp_connection_state_t_* state() const { return state_; }

  /// Checks the reply of the last RPC on this connection; empty when it succeeded.
  std::string rpc_error(std::string_view what);

 private:
  amqp_connection_state_t_* state_ = nullptr;
};

/// The AMQP exchange type of a bus kind: "fanout" or "direct".
const char* amqp_exchange_type(bus_kind kind);

}  // namespace gwx::bus
