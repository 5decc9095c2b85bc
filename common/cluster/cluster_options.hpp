#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "common/net/endpoint.hpp"
#include "common/net/tls_files.hpp"

namespace gwx {

/// How a process (worker, gwx::Client, gwxctl) finds the gateways and links to them.
struct cluster_options {
  /// Registers to watch for gateways; empty: the gateways are given directly (tests).
  std::vector<host_port> registers;
  /// The link secret shared with the gateways.
  std::string secret;
  /// The register access token (empty: none).
  std::string token;
  /// Shown in gateway logs and stats; empty: a default for the role.
  std::string name;
  /// Timeout of queries called with a zero timeout.
  std::chrono::milliseconds query_timeout{3000};
  /// Link keepalive: ping interval, and how long a silent gateway is kept.
  std::chrono::milliseconds keepalive_interval{1000};
  std::chrono::milliseconds keepalive_timeout{5000};
  /// TLS towards the registers: `ca` set turns it on; `cert`/`key` for registers that require a
  /// client certificate. Empty: plaintext gRPC.
  tls_files register_tls;
  /// TLS on the links to the gateways: all three files set (the gateways must use TLS links too),
  /// or none (plain links).
  tls_files link_tls;
  /// Non-empty: the Gateway API's writes (sends, membership, sessions, close) are published to
  /// this push bus URL (see gwx-gateway --bus) instead of going over the links; queries still
  /// use the links. At-most-once.
  std::string push_bus;
};

}  // namespace gwx
