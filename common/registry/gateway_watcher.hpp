#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/net/endpoint.hpp"
#include "common/net/tls_files.hpp"

namespace gwx::registry {

/// Longest watcher_name a register accepts in a Watch; a longer one is refused
/// (INVALID_ARGUMENT), so gateway_watcher sends at most this much of its name.
constexpr std::size_t k_max_watcher_name = 256;

/// One live gateway as the registers know it.
struct gateway_entry {
  std::string gateway_id;
  std::string internal_address;
  std::vector<std::string> listeners;
  std::string name;

  bool operator==(const gateway_entry&) const = default;
};

/// Watches every given register over gRPC (Watch stream, reconnecting with backoff and jitter)
/// and merges what they say: a gateway is present while any register lists it. A register that
/// is down keeps its last known set until it answers again, so a register restart leaves the
/// set (and the links built on it) untouched. While another register is live, that one speaks
/// for the cluster: a down register's last set yields to it after a few seconds' grace.
///
/// Thread-safe. `on_change` runs on an internal thread with the whole merged set, sorted by
/// gateway_id, each time it changes; callers post from there into their own loop.
class gateway_watcher {
 public:
  using change_handler = std::function<void(const std::vector<gateway_entry>&)>;

  /// `watcher_name`: shown in the registers' logs, cut to k_max_watcher_name bytes. `tls`: the
  /// registers are called over TLS with these files (see make_register_credentials);
  /// empty: plaintext. Throws std::runtime_error when a file cannot be read.
  gateway_watcher(std::vector<host_port> registers, std::string token, std::string watcher_name,
                  change_handler on_change, const tls_files& tls = {});
  ~gateway_watcher();
  gateway_watcher(const gateway_watcher&) = delete;
  gateway_watcher& operator=(const gateway_watcher&) = delete;

  void start();
  /// Cancels the streams and joins the threads. Idempotent.
  void stop();

  /// Blocks until at least one register has sent its snapshot, or `timeout` passes.
  bool wait_for_snapshot(std::chrono::milliseconds timeout);

  /// The current merged set.
  std::vector<gateway_entry> current() const;

  /// Reads the register TLS files again: connections to the registers made from now on use
  /// them (within a second), connections up stay. Nullopt on success or without TLS; otherwise
  /// the previous files stay in use and the error is returned (one line naming the file).
  std::optional<std::string> reload_tls();

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace gwx::registry
