#include "common/net/endpoint.hpp"

#include <charconv>
#include <stdexcept>

namespace gwx {

std::string format_host_port(std::string_view host, std::uint16_t port) {
  std::string out;
  if (host.find(':') != std::string_view::npos) {
    out.append("[").append(host).append("]");
  } else {
    out.append(host);
  }
  out.append(":").append(std::to_string(port));
  return out;
}

std::string host_port::to_string() const {
  return format_host_port(host, port);
}

host_port parse_host_port(std::string_view text) {
  host_port out;
  std::string_view port_text;
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      throw std::invalid_argument("bad address '" + std::string(text) + "': expected [ipv6]:port");
    }
    out.host = std::string(text.substr(1, close - 1));
    port_text = text.substr(close + 2);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos || text.find(':') != colon) {
      throw std::invalid_argument("bad address '" + std::string(text) +
                                  "': expected host:port (IPv6 as [addr]:port)");
    }
    out.host = std::string(text.substr(0, colon));
    port_text = text.substr(colon + 1);
  }
  if (out.host.empty()) {
    throw std::invalid_argument("bad address '" + std::string(text) + "': empty host");
  }
  unsigned value = 0;
  const auto* end = port_text.data() + port_text.size();
  const auto [ptr, ec] = std::from_chars(port_text.data(), end, value);
  if (port_text.empty() || ec != std::errc{} || ptr != end || value > 65535) {
    throw std::invalid_argument("bad address '" + std::string(text) + "': bad port");
  }
  out.port = static_cast<std::uint16_t>(value);
  return out;
}

std::vector<host_port> parse_host_port_list(std::string_view text) {
  std::vector<host_port> out;
  while (!text.empty()) {
    const auto comma = text.find(',');
    const auto item = text.substr(0, comma);
    if (!item.empty()) {
      out.push_back(parse_host_port(item));
    }
    if (comma == std::string_view::npos) {
      break;
    }
    text.remove_prefix(comma + 1);
  }
  if (out.empty()) {
    throw std::invalid_argument("empty address list");
  }
  return out;
}

}  // namespace gwx
