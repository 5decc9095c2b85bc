#pragma once

#include <cstddef>
#include <cstdint>

namespace gwx::gateway {

/// Why a client connection closed, as counted in gwx_gateway_connections_closed_total{reason}.
/// Set where the close is decided; the human-readable reason beside it goes to the log and to
/// the worker's CLOSE event, and is never parsed.
enum class close_cause : std::uint8_t {
  client,             ///< the client closed (TCP FIN, a WebSocket close frame, a reset)
  server,             ///< a worker or gwxctl closed or destroyed it
  protocol_error,     ///< bad bytes: a malformed frame, handshake or TLS record; a message too big
  refused,            ///< upgrade refused: unknown path, Origin not allowed, a worker said no
  timeout,            ///< no upgrade, TLS handshake or connect decision within handshake_timeout
  idle_timeout,       ///< silent for idle_timeout_ms
  heartbeat_timeout,  ///< missed heartbeat_missed heartbeats
  slow_client,        ///< its send buffer overflowed with slow_client=close
  queue_policy,       ///< its events waited for a worker past the queue bounds (policy close)
  overload,           ///< its unfinished message did not fit the gateway's --unfinished-max-bytes
  shutdown,           ///< the gateway is stopping
  io_error,           ///< a socket or TLS error while reading or writing, or out of memory
};

inline constexpr std::size_t k_close_causes = static_cast<std::size_t>(close_cause::io_error) + 1;

/// The metric label of `cause`.
constexpr const char* label(close_cause cause) {
  switch (cause) {
    case close_cause::client:
      return "client";
    case close_cause::server:
      return "server";
    case close_cause::protocol_error:
      return "protocol_error";
    case close_cause::refused:
      return "refused";
    case close_cause::timeout:
      return "timeout";
    case close_cause::idle_timeout:
      return "idle_timeout";
    case close_cause::heartbeat_timeout:
      return "heartbeat_timeout";
    case close_cause::slow_client:
      return "slow_client";
    case close_cause::queue_policy:
      return "queue_policy";
    case close_cause::overload:
      return "overload";
    case close_cause::shutdown:
      return "shutdown";
    case close_cause::io_error:
      return "io_error";
  }
  return "io_error";
}

}  // namespace gwx::gateway
