#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/net/endpoint.hpp"
#include "common/net/tls_files.hpp"
#include "common/registry/gateway_watcher.hpp"
#include "common/registry/register_auth.hpp"

namespace gwx::registry {

/// Keeps one gateway registered with every given register: Heartbeat at a third of the lease,
/// re-registering after a register restarts; each register is served independently so one that
/// is down or slow never delays the others. Withdraws on stop().
///
/// Every Heartbeat and the Withdraw carry a lease key drawn at construction, which binds the
/// entry to this process (nobody else can replace or withdraw it), and, with a token, a proof
/// of the token for that one call. Without a token, start() logs one warning: the registers are
/// open, so anyone who reaches them can announce a fake gateway.
///
/// Thread-safe; runs its own thread(s). Logs once when a register becomes unreachable and once
/// when it is back, never per heartbeat.
class lease_keeper {
 public:
  /// `tls`: the registers are called over TLS with these files (see make_register_credentials);
  /// empty: plaintext. Throws std::runtime_error when a file cannot be read.
  lease_keeper(std::vector<host_port> registers, std::string token, gateway_entry self,
               std::chrono::milliseconds ttl = std::chrono::seconds(6), const tls_files& tls = {});
  ~lease_keeper();
  lease_keeper(const lease_keeper&) = delete;
  lease_keeper& operator=(const lease_keeper&) = delete;

  void start();
  /// Withdraws from every register (best effort, bounded) and joins. Idempotent.
  void stop();

  /// Reads the register TLS files again: connections to the registers made from now on use
  /// them (within a second), connections up stay. Nullopt on success or without TLS; otherwise
  /// the previous files stay in use and the error is returned (one line naming the file).
  std::optional<std::string> reload_tls();

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace gwx::registry
