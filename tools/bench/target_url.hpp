#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace gwx::bench {

/// The client protocols of the gateway's public listeners.
enum class protocol { ws, tcp_line, tcp_frame, tcp_raw };

/// "ws", "tcp+line", "tcp+frame" or "tcp+raw".
const char* protocol_name(protocol p);

/// A listener URL: `ws://HOST:PORT[/path]`, `tcp+line://HOST:PORT`, `tcp+frame://HOST:PORT`,
/// `tcp+raw://HOST:PORT`, and their TLS forms `wss://`, `tls+line://`, `tls+frame://`,
/// `tls+raw://` (idle mode only). IPv6 hosts in brackets.
struct target_url {
  protocol proto = protocol::ws;
  bool tls = false;
  std::string host;
  std::uint16_t port = 0;
  std::string path = "/";  ///< ws only: request target (path and query)

  /// Formats back to a URL (with the port it holds).
  std::string to_string() const;
};

/// The URL scheme: protocol_name(), or its TLS form ("wss", "tls+line"…).
std::string scheme_of(const target_url& url);

/// Parses a listener URL. Throws std::invalid_argument with a message that says what is wrong.
/// Port 0 is accepted only when `allow_port_zero` (listening).
target_url parse_target_url(std::string_view text, bool allow_port_zero = false);

/// Parses a protocol name as in protocol_name(). Throws std::invalid_argument.
protocol parse_protocol(std::string_view name);

}  // namespace gwx::bench
