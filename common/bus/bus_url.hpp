#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace gwx::bus {

/// Which broker a bus URL names, and how gateways use it.
enum class bus_kind {
  redis,        ///< Redis pub/sub: every gateway subscribes to one channel
  amqp_fanout,  ///< AMQP fanout exchange: every gateway's own queue gets every message
  amqp_routed,  ///< AMQP direct exchange: each gateway binds the routing keys of what it holds
};

/// A parsed --bus URL:
///   redis://[USER:PASSWORD@]HOST:PORT/CHANNEL
///   amqp://USER:PASSWORD@HOST:PORT/VHOST?exchange=NAME&mode=fanout|routed
/// User, password, channel and vhost are percent-decoded (the vhost "/" is written %2F; an
/// empty path means "/"). A value type.
struct bus_url {
  bus_kind kind = bus_kind::redis;
  std::string host;
  std::uint16_t port = 0;
  std::string user;
  std::string password;
  std::string channel;   ///< redis
  std::string vhost;     ///< amqp
  std::string exchange;  ///< amqp

  bool amqp() const { return kind != bus_kind::redis; }
  /// The URL with the password replaced by "***": what logs and stats show.
  std::string redacted() const;
  /// "redis", "amqp-fanout" or "amqp-routed".
  const char* mode_name() const;
};

/// Parses a bus URL; throws std::invalid_argument with a one-line reason that never contains
/// the password.
bus_url parse_bus_url(std::string_view url);

}  // namespace gwx::bus
