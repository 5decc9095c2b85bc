#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/metrics/counter.hpp"
#include "common/net/tls_context.hpp"
#include "common/net/tls_io.hpp"

namespace gwx::metrics {
class registry;
}

namespace gwx::gateway {

/// What a TLS listener (wss://, tls+line://, tls+frame://, tls+raw://) shares between its
/// connections: the server context (reloadable), failed-handshake counters by reason and a
/// log of failures limited to one line per interval. Thread-safe: every loop uses it.
class listener_tls {
 public:
  /// Failed handshakes are logged at most once per this interval (with a count of the rest).
  static constexpr auto k_log_interval = std::chrono::seconds(10);

  /// Loads the certificates. Throws net::tls_config_error.
  listener_tls(const std::string& listener, net::tls_server_config config);

  const net::tls_context& context() const { return *context_; }
  /// Reads the files again; on failure keeps the current certificates and returns the error.
  std::optional<std::string> reload();

  /// Resolves the failure counters of this listener in `reg`.
  void attach(metrics::registry& reg, const std::string& listener);
  /// Counts a failed handshake and logs it unless a line was logged within the interval.
  void handshake_failed(net::tls_failure reason, std::string_view detail, std::string_view remote);
  /// Failed handshakes so far under `reason` (counted with or without --metrics).
  std::uint64_t failures(net::tls_failure reason) const;

 private:
  std::string listener_;
  std::shared_ptr<net::tls_context> context_;
  static constexpr std::size_t k_reasons = 11;
  std::array<metrics::counter, k_reasons> counters_;
  std::array<std::atomic<std::uint64_t>, k_reasons> counts_{};
  std::atomic<std::int64_t> last_log_ms_{-1};
  std::atomic<std::uint64_t> unlogged_{0};
};

}  // namespace gwx::gateway
