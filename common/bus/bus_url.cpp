#include "common/bus/bus_url.hpp"

#include <charconv>
#include <stdexcept>

namespace gwx::bus {
namespace {

[[noreturn]] void bad(const std::string& why) {
  throw std::invalid_argument("bad --bus URL: " + why);
}

std::string percent_decode(std::string_view s, const char* what) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out.push_back(s[i]);
      continue;
    }
    unsigned v = 0;
    if (i + 2 >= s.size() ||
        std::from_chars(s.data() + i + 1, s.data() + i + 3, v, 16).ptr != s.data() + i + 3) {
      bad(std::string("bad percent escape in the ") + what);
    }
    out.push_back(static_cast<char>(v));
    i += 2;
  }
  return out;
}

}  // namespace

std::string bus_url::redacted() const {
  std::string out = kind == bus_kind::redis ? "redis://" : "amqp://";
  if (!user.empty() || !password.empty()) {
    out += user;
    out += password.empty() ? "@" : ":***@";
  }
  out += host.find(':') != std::string::npos ? "[" + host + "]" : host;
  out += ":" + std::to_string(port) + "/";
  if (kind == bus_kind::redis) {
    out += channel;
  } else {
    out += vhost == "/" ? "%2F" : vhost;
    out +=
        "?exchange=" + exchange + "&mode=" + (kind == bus_kind::amqp_routed ? "routed" : "fanout");
  }
  return out;
}

const char* bus_url::mode_name() const {
  switch (kind) {
    case bus_kind::redis:
      return "redis";
    case bus_kind::amqp_fanout:
      return "amqp-fanout";
    case bus_kind::amqp_routed:
      return "amqp-routed";
  }
  return "?";
}

bus_url parse_bus_url(std::string_view url) {
  bus_url out;
  std::string_view rest;
  if (url.starts_with("redis://")) {
    out.kind = bus_kind::redis;
    rest = url.substr(8);
  } else if (url.starts_with("amqp://")) {
    out.kind = bus_kind::amqp_fanout;
    rest = url.substr(7);
  } else {
    bad("expected redis://HOST:PORT/CHANNEL or amqp://USER:PASSWORD@HOST:PORT/VHOST?exchange=NAME"
        "&mode=fanout|routed");
  }
  std::string_view query;
  if (const auto q = rest.find('?'); q != std::string_view::npos) {
    query = rest.substr(q + 1);
    rest = rest.substr(0, q);
  }
  std::string_view path;
  bool has_path = false;
  if (const auto slash = rest.find('/'); slash != std::string_view::npos) {
    path = rest.substr(slash + 1);
    rest = rest.substr(0, slash);
    has_path = true;
  }
  if (rest.find('@') == std::string_view::npos &&
      (path.find('@') != std::string_view::npos || query.find('@') != std::string_view::npos)) {
    // A '/' or '?' in a password ends the host part early: what follows must not be quoted
    // back (an error naming a "parameter" or channel would hold part of the password).
    bad("an '@' after the host: percent-encode '/', '?' and '@' in a user name, password or "
        "name (%2F, %3F, %40)");
  }
  if (const auto at = rest.rfind('@'); at != std::string_view::npos) {
    const auto userinfo = rest.substr(0, at);
    rest = rest.substr(at + 1);
    const auto colon = userinfo.find(':');
    out.user = percent_decode(userinfo.substr(0, colon), "user name");
    if (colon != std::string_view::npos) {
      out.password = percent_decode(userinfo.substr(colon + 1), "password");
    }
  }
  std::string_view port_text;
  if (rest.starts_with('[')) {
    const auto close = rest.find(']');
    if (close == std::string_view::npos) {
      bad("unterminated [IPv6] host");
    }
    out.host = std::string(rest.substr(1, close - 1));
    rest = rest.substr(close + 1);
    if (rest.starts_with(':')) {
      port_text = rest.substr(1);
    } else if (!rest.empty()) {
      bad("expected :PORT after the host");
    }
  } else {
    const auto colon = rest.rfind(':');
    out.host = std::string(rest.substr(0, colon));
    if (colon != std::string_view::npos) {
      port_text = rest.substr(colon + 1);
    }
  }
  if (out.host.empty()) {
    bad("the host is missing");
  }
  if (port_text.empty()) {
    out.port = out.kind == bus_kind::redis ? 6379 : 5672;
  } else {
    unsigned p = 0;
    const auto [ptr, ec] =
        std::from_chars(port_text.data(), port_text.data() + port_text.size(), p);
    if (ec != std::errc{} || ptr != port_text.data() + port_text.size() || p == 0 || p > 65535) {
      bad("the port must be a number within 1..65535");
    }
    out.port = static_cast<std::uint16_t>(p);
  }
  if (out.kind == bus_kind::redis) {
    if (!query.empty()) {
      bad("a redis:// URL takes no query parameters");
    }
    out.channel = percent_decode(path, "channel");
    if (!has_path || out.channel.empty()) {
      bad("a redis:// URL names its channel: redis://HOST:PORT/CHANNEL");
    }
    return out;
  }
  out.vhost = path.empty() ? "/" : percent_decode(path, "vhost");
  if (out.user.empty()) {
    out.user = "guest";
    out.password = out.password.empty() ? "guest" : out.password;
  }
  std::string mode;
  while (!query.empty()) {
    const auto amp = query.find('&');
    const auto pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    const auto eq = pair.find('=');
    const auto key = pair.substr(0, eq);
    const auto value =
        eq == std::string_view::npos ? std::string{} : percent_decode(pair.substr(eq + 1), "query");
    if (key == "exchange") {
      out.exchange = value;
    } else if (key == "mode") {
      mode = value;
    } else {
      bad("unknown parameter '" + std::string(key) + "' (known: exchange, mode)");
    }
  }
  if (out.exchange.empty()) {
    bad("an amqp:// URL needs ?exchange=NAME");
  }
  if (mode == "fanout") {
    out.kind = bus_kind::amqp_fanout;
  } else if (mode == "routed") {
    out.kind = bus_kind::amqp_routed;
  } else {
    bad("mode must be fanout or routed (amqp://…?exchange=NAME&mode=fanout|routed)");
  }
  return out;
}

}  // namespace gwx::bus
