#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "gateway/close_cause.hpp"
#include "gateway/outbound.hpp"

namespace gwx::gateway {

/// Where a client connection is in its life.
enum class client_state : std::uint8_t { handshake, deciding, open, closing, closed };

/// What became of bytes handed to a client.
enum class send_status : std::uint8_t {
  ok,       ///< queued for the socket
  dropped,  ///< over the send-buffer cap, dropped by the listener's slow-client policy
  closed,   ///< not open (or closed now by the slow-client policy): nothing queued
};

/// The narrow face of one client connection that the per-loop parts (directory, router,
/// executor) act through; client_session implements it over a socket, tests with a fake.
/// Used on the client's loop only; not thread-safe.
class client_port {
 public:
  virtual ~client_port() = default;

  /// Where the connection is in its life.
  virtual client_state current_state() const = 0;
  /// Queues encoded bytes; applies the listener's slow-client policy.
  virtual send_status send(const wire_bytes& bytes) = 0;
  /// Frames `payload` for `kind` (the client's listener's) and queues it: a message to this
  /// client alone, which a real connection encodes straight into its queue.
  virtual send_status send_message(framing kind, std::string_view payload, bool binary) {
    return send(encode_for(kind, payload, binary));
  }
  /// Stops reading from the client until resume_reading() (its events must wait): TCP
  /// backpressure instead of unbounded memory.
  virtual void pause_reading() {}
  virtual void resume_reading() {}
  /// Sends `final_message` (payload, binary) if any, then closes gracefully.
  virtual void close_gracefully(std::optional<std::pair<std::string_view, bool>> final_message) = 0;
  /// Closes at once, dropping anything queued; counted under `cause`.
  virtual void destroy(close_cause cause, const std::string& reason) = 0;
  /// Closes with a reason the client can read (a WebSocket close frame with `ws_code`).
  virtual void close_with_reason(close_cause cause, std::uint16_t ws_code,
                                 const std::string& reason) = 0;
};

}  // namespace gwx::gateway
