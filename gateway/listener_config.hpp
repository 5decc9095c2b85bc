#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "gateway/gateway_metrics.hpp"

namespace gwx::gateway {

class listener_tls;

/// How a public listener frames client messages.
enum class framing : std::uint8_t {
  websocket,  ///< ws:// — RFC 6455
  line,       ///< tcp+line:// — messages end in "\n"
  frame,      ///< tcp+frame:// — 4-byte big-endian length prefix
  raw,        ///< tcp+raw:// — each read is a message
};

/// What to do when a client's unsent bytes exceed its send-buffer cap.
enum class slow_policy : std::uint8_t { close, drop };

/// Certificate files of a TLS listener (gateway-wide flags, overridden per listener).
struct listener_tls_files {
  /// PEM chains and keys, paired by position; the first is the default, the others are chosen
  /// by the client's SNI name (see net::tls_server_config).
  std::vector<std::string> certs;
  std::vector<std::string> keys;
  std::string client_ca;
  /// none, optional or require; empty: require when client_ca is set, else none.
  std::string client_auth;
};

/// The largest max_message a listener may have: a client's message goes to a worker as one
/// link frame, and a link frame is at most 64 MiB (common/net/link_stream.hpp); 1 MiB of it is
/// left for the event's header.
constexpr std::size_t k_max_client_message = 63 << 20;

/// Per-listener settings. Defaults come from gateway-wide flags; a listener URL overrides them
/// with query parameters, e.g. `ws://0.0.0.0:8080/chat?max_message=65536&ask=1`.
struct listener_config {
  std::string url;  ///< as given (port 0 stays 0); `bound_url` has the real port
  std::string bound_url;
  framing kind = framing::websocket;
  std::string host;
  std::uint16_t port = 0;
  std::string path = "/";  ///< WebSocket: "/" accepts any path, anything else must match
  std::size_t max_message = 1 << 20;
  std::size_t max_connections = 1000000;
  /// Connections from one client address that may be in their handshake at once (at least 1).
  std::size_t max_handshakes_per_ip = 256;
  std::size_t send_buffer = 4 << 20;
  slow_policy on_slow = slow_policy::close;
  std::chrono::milliseconds handshake_timeout{10000};
  std::chrono::milliseconds idle_timeout{0};        ///< 0: off
  std::chrono::milliseconds heartbeat_interval{0};  ///< 0: off
  unsigned heartbeat_missed = 0;     ///< close after this many silent intervals; 0: never
  std::string heartbeat_data;        ///< TCP framings: sent each interval (WebSocket sends a ping)
  std::vector<std::string> origins;  ///< WebSocket Origin allow-list; empty: any
  bool ask_on_connect = false;       ///< WebSocket: wait for the worker's decision before 101
  bool tls = false;                  ///< wss:// or tls+…://
  listener_tls_files tls_files;
  /// The loaded TLS state of a TLS listener (load_listener_tls); null for plain ones.
  std::shared_ptr<listener_tls> tls_state;
  /// Metric handles of this listener (no-ops without --metrics).
  listener_metrics metrics;
};

/// Parses a listener URL; `defaults` supplies every setting the URL does not override.
/// Throws std::invalid_argument with a message naming the URL and what is wrong.
listener_config parse_listener_url(const std::string& url, const listener_config& defaults);

/// Loads the certificates of a TLS listener into `cfg.tls_state` (nothing for a plain one).
/// Throws std::runtime_error naming the listener and the file at fault.
void load_listener_tls(listener_config& cfg);

/// Scheme of a framing, as written in URLs (wss, tls+line… when `tls`).
const char* scheme_of(framing kind, bool tls = false);

}  // namespace gwx::gateway
