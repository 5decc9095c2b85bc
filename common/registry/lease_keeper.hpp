#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "common/net/endpoint.hpp"
#include "common/registry/gateway_watcher.hpp"

namespace gwx::registry {

/// Keeps one gateway registered with every given register: Heartbeat at a third of the lease,
/// re-registering after a register restarts; each register is served independently so one that
/// is down or slow never delays the others. Withdraws on stop().
///
/// Thread-safe; runs its own thread(s). Logs once when a register becomes unreachable and once
/// when it is back, never per heartbeat.
class lease_keeper {
 public:
  lease_keeper(std::vector<host_port> registers, std::string token, gateway_entry self,
               std::chrono::milliseconds ttl = std::chrono::seconds(6));
  ~lease_keeper();
  lease_keeper(const lease_keeper&) = delete;
  lease_keeper& operator=(const lease_keeper&) = delete;

  void start();
  /// Withdraws from every register (best effort, bounded) and joins. Idempotent.
  void stop();

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

/// gRPC metadata proving knowledge of `token` without sending it:
/// "x-gwx-auth: <unix_seconds>:<hex HMAC-SHA256(token, unix_seconds)>". Empty token: no header.
constexpr const char* k_auth_metadata = "x-gwx-auth";
std::string make_auth_value(const std::string& token);
/// Checks a header value against `token`, accepting clocks up to `skew` apart.
bool check_auth_value(const std::string& token, const std::string& value,
                      std::chrono::seconds skew = std::chrono::seconds(300));

}  // namespace gwx::registry
