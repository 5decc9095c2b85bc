#include "gateway/listener_config.hpp"

#include <charconv>
#include <stdexcept>

#include "common/net/endpoint.hpp"
#include "gateway/listener_tls.hpp"

namespace gwx::gateway {
namespace {

std::size_t parse_size(const std::string& url, const std::string& key, const std::string& value,
                       std::size_t min, std::size_t max) {
  std::size_t out = 0;
  const auto* end = value.data() + value.size();
  const auto [ptr, ec] = std::from_chars(value.data(), end, out);
  if (value.empty() || ec != std::errc{} || ptr != end || out < min || out > max) {
    throw std::invalid_argument("listener '" + url + "': " + key + "=" + value +
                                " is not a number in [" + std::to_string(min) + ", " +
                                std::to_string(max) + "]");
  }
  return out;
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= s.size()) {
    const auto pos = s.find(sep, start);
    const auto item = s.substr(start, pos == std::string::npos ? std::string::npos : pos - start);
    if (!item.empty()) {
      out.push_back(item);
    }
    if (pos == std::string::npos) {
      break;
    }
    start = pos + 1;
  }
  return out;
}

void check_tls(const listener_config& cfg, const std::string& tls_option) {
  const auto& url = cfg.url;
  if (!cfg.tls) {
    if (!tls_option.empty()) {
      throw std::invalid_argument("listener '" + url + "': " + tls_option +
                                  " applies to wss:// and tls+… listeners only");
    }
    return;
  }
  const auto& f = cfg.tls_files;
  if (f.certs.empty() || f.keys.empty()) {
    throw std::invalid_argument("listener '" + url +
                                "' needs a certificate and its key: --tls-cert and --tls-key, "
                                "or tls_cert= and tls_key= in its URL");
  }
  if (f.certs.size() != f.keys.size()) {
    throw std::invalid_argument("listener '" + url + "': " + std::to_string(f.certs.size()) +
                                " certificate(s) but " + std::to_string(f.keys.size()) +
                                " key(s); they pair up by position");
  }
  if (f.client_auth.empty() || f.client_auth == "none") {
    return;
  }
  if (f.client_ca.empty()) {
    throw std::invalid_argument("listener '" + url + "': tls_client_auth=" + f.client_auth +
                                " needs a CA: --tls-client-ca or tls_client_ca=");
  }
}

}  // namespace

const char* scheme_of(framing kind, bool tls) {
  switch (kind) {
    case framing::websocket:
      return tls ? "wss" : "ws";
    case framing::line:
      return tls ? "tls+line" : "tcp+line";
    case framing::frame:
      return tls ? "tls+frame" : "tcp+frame";
    case framing::raw:
      return tls ? "tls+raw" : "tcp+raw";
  }
  return "?";
}

void load_listener_tls(listener_config& cfg) {
  if (!cfg.tls) {
    return;
  }
  const auto& f = cfg.tls_files;
  net::tls_server_config tls;
  for (std::size_t i = 0; i < f.certs.size(); ++i) {
    tls.identities.push_back({f.certs[i], f.keys[i]});
  }
  tls.client_ca_file = f.client_ca;
  const auto& auth =
      f.client_auth.empty() ? (f.client_ca.empty() ? "none" : "require") : f.client_auth;
  tls.client_verify = auth == "require"    ? net::tls_peer_verify::require
                      : auth == "optional" ? net::tls_peer_verify::optional
                                           : net::tls_peer_verify::none;
  if (cfg.kind == framing::websocket) {
    tls.alpn = {"http/1.1"};
  }
  try {
    cfg.tls_state = std::make_shared<listener_tls>(cfg.url, std::move(tls));
  } catch (const net::tls_config_error& e) {
    throw std::runtime_error("listener '" + cfg.url + "': " + e.what());
  }
}

listener_config parse_listener_url(const std::string& url, const listener_config& defaults) {
  listener_config cfg = defaults;
  cfg.url = url;
  const auto sep = url.find("://");
  if (sep == std::string::npos) {
    throw std::invalid_argument("listener '" + url +
                                "': expected SCHEME://HOST:PORT[/path][?options]");
  }
  const auto scheme = url.substr(0, sep);
  cfg.tls = scheme == "wss" || scheme.starts_with("tls+");
  if (scheme == "ws" || scheme == "wss") {
    cfg.kind = framing::websocket;
  } else if (scheme == "tcp+line" || scheme == "tls+line") {
    cfg.kind = framing::line;
  } else if (scheme == "tcp+frame" || scheme == "tls+frame") {
    cfg.kind = framing::frame;
  } else if (scheme == "tcp+raw" || scheme == "tls+raw") {
    cfg.kind = framing::raw;
  } else {
    throw std::invalid_argument("listener '" + url + "': unsupported scheme '" + scheme +
                                "' (ws, wss, tcp+line, tcp+frame, tcp+raw, tls+line, "
                                "tls+frame, tls+raw)");
  }
  auto rest = url.substr(sep + 3);
  std::string query;
  if (const auto q = rest.find('?'); q != std::string::npos) {
    query = rest.substr(q + 1);
    rest.resize(q);
  }
  std::string authority = rest;
  cfg.path = "/";
  if (const auto slash = rest.find('/'); slash != std::string::npos) {
    authority = rest.substr(0, slash);
    cfg.path = rest.substr(slash);
  }
  if (cfg.kind != framing::websocket && cfg.path != "/") {
    throw std::invalid_argument("listener '" + url +
                                "': a path only makes sense for ws:// and wss://");
  }
  try {
    const auto hp = parse_host_port(authority);
    cfg.host = hp.host;
    cfg.port = hp.port;
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument("listener '" + url + "': " + e.what());
  }
  std::string tls_option;
  for (const auto& kv : split(query, '&')) {
    const auto eq = kv.find('=');
    const auto key = kv.substr(0, eq);
    const auto value = eq == std::string::npos ? std::string{} : kv.substr(eq + 1);
    if (key == "max_message") {
      cfg.max_message = parse_size(url, key, value, 1, k_max_client_message);
    } else if (key == "max_connections") {
      cfg.max_connections = parse_size(url, key, value, 1, 100000000);
    } else if (key == "max_handshakes_per_ip") {
      cfg.max_handshakes_per_ip = parse_size(url, key, value, 1, 100000000);
    } else if (key == "send_buffer") {
      cfg.send_buffer = parse_size(url, key, value, 1024, 1ULL << 34);
    } else if (key == "slow_client") {
      if (value != "close" && value != "drop") {
        throw std::invalid_argument("listener '" + url + "': slow_client must be close or drop");
      }
      cfg.on_slow = value == "drop" ? slow_policy::drop : slow_policy::close;
    } else if (key == "handshake_timeout_ms") {
      cfg.handshake_timeout = std::chrono::milliseconds(parse_size(url, key, value, 1, 3600000));
    } else if (key == "idle_timeout_ms") {
      cfg.idle_timeout = std::chrono::milliseconds(parse_size(url, key, value, 0, 86400000));
    } else if (key == "heartbeat_interval_ms") {
      cfg.heartbeat_interval = std::chrono::milliseconds(parse_size(url, key, value, 0, 86400000));
    } else if (key == "heartbeat_missed") {
      cfg.heartbeat_missed = static_cast<unsigned>(parse_size(url, key, value, 0, 1000));
    } else if (key == "heartbeat_data") {
      cfg.heartbeat_data = value;
    } else if (key == "origins") {
      cfg.origins = split(value, ',');
    } else if (key == "ask") {
      cfg.ask_on_connect = parse_size(url, key, value, 0, 1) == 1;
    } else if (key == "tls_cert") {
      cfg.tls_files.certs = split(value, ',');
      tls_option = key;
    } else if (key == "tls_key") {
      cfg.tls_files.keys = split(value, ',');
      tls_option = key;
    } else if (key == "tls_client_ca") {
      cfg.tls_files.client_ca = value;
      tls_option = key;
    } else if (key == "tls_client_auth") {
      if (value != "none" && value != "optional" && value != "require") {
        throw std::invalid_argument("listener '" + url +
                                    "': tls_client_auth must be none, optional or require");
      }
      cfg.tls_files.client_auth = value;
      tls_option = key;
    } else {
      throw std::invalid_argument(
          "listener '" + url + "': unknown option '" + key +
          "' (max_message, max_connections, max_handshakes_per_ip, send_buffer, slow_client, "
          "handshake_timeout_ms, idle_timeout_ms, heartbeat_interval_ms, heartbeat_missed, "
          "heartbeat_data, origins, ask, tls_cert, tls_key, tls_client_ca, tls_client_auth)");
    }
  }
  check_tls(cfg, tls_option);
  if ((cfg.kind != framing::websocket) && (cfg.ask_on_connect || !cfg.origins.empty())) {
    throw std::invalid_argument("listener '" + url + "': ask and origins apply to ws:// only");
  }
  return cfg;
}

}  // namespace gwx::gateway
