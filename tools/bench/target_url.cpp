#include "tools/bench/target_url.hpp"

#include <stdexcept>

#include "common/net/endpoint.hpp"

namespace gwx::bench {

const char* protocol_name(protocol p) {
  switch (p) {
    case protocol::ws:
      return "ws";
    case protocol::tcp_line:
      return "tcp+line";
    case protocol::tcp_frame:
      return "tcp+frame";
    case protocol::tcp_raw:
      return "tcp+raw";
  }
  return "?";
}

protocol parse_protocol(std::string_view name) {
  for (const auto p : {protocol::ws, protocol::tcp_line, protocol::tcp_frame, protocol::tcp_raw}) {
    if (name == protocol_name(p)) {
      return p;
    }
  }
  throw std::invalid_argument("unknown protocol '" + std::string(name) +
                              "' (ws, tcp+line, tcp+frame, tcp+raw)");
}

std::string scheme_of(const target_url& url) {
  if (!url.tls) {
    return protocol_name(url.proto);
  }
  return url.proto == protocol::ws ? std::string("wss")
                                   : "tls+" + std::string(protocol_name(url.proto)).substr(4);
}

std::string target_url::to_string() const {
  return scheme_of(*this) + "://" + format_host_port(host, port) +
         (proto == protocol::ws ? path : "");
}

target_url parse_target_url(std::string_view text, bool allow_port_zero) {
  const auto sep = text.find("://");
  if (sep == std::string_view::npos) {
    throw std::invalid_argument("'" + std::string(text) +
                                "' is not a URL (expected e.g. ws://127.0.0.1:8080/ or "
                                "tcp+line://127.0.0.1:8081)");
  }
  target_url url;
  const auto scheme = text.substr(0, sep);
  if (scheme == "wss") {
    url.tls = true;
    url.proto = protocol::ws;
  } else if (scheme.substr(0, 4) == "tls+") {
    url.tls = true;
    url.proto = parse_protocol("tcp+" + std::string(scheme.substr(4)));
  } else {
    url.proto = parse_protocol(scheme);
  }
  auto rest = text.substr(sep + 3);
  const auto slash = rest.find_first_of("/?");
  const auto authority = rest.substr(0, slash);
  if (slash != std::string_view::npos) {
    if (url.proto != protocol::ws) {
      throw std::invalid_argument("'" + std::string(text) + "': a " + protocol_name(url.proto) +
                                  " URL has no path");
    }
    url.path = std::string(rest.substr(slash));
    if (url.path.front() == '?') {
      url.path.insert(0, "/");
    }
  }
  try {
    const auto hp = parse_host_port(authority);
    url.host = hp.host;
    url.port = hp.port;
  } catch (const std::exception& e) {
    throw std::invalid_argument("'" + std::string(text) + "': " + e.what());
  }
  if (url.port == 0 && !allow_port_zero) {
    throw std::invalid_argument("'" + std::string(text) + "': port 0 cannot be connected to");
  }
  return url;
}

}  // namespace gwx::bench
