#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace gwx {

/// A "host:port" pair as written by users; IPv6 hosts in brackets ("[::1]:9000").
struct host_port {
  std::string host;
  std::uint16_t port = 0;

  /// Formats back to "host:port", bracketing IPv6 literals.
  std::string to_string() const;
};

/// Parses "host:port" / "[v6]:port". Throws std::invalid_argument with a clear message.
host_port parse_host_port(std::string_view text);

/// Parses a comma-separated list of host:port. Throws std::invalid_argument.
std::vector<host_port> parse_host_port_list(std::string_view text);

/// Formats an IP address string and port as "host:port" with brackets for IPv6.
std::string format_host_port(std::string_view host, std::uint16_t port);

}  // namespace gwx
