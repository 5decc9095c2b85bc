#include "gateway/listener_tls.hpp"

#include <spdlog/spdlog.h>

#include "common/metrics/registry.hpp"

namespace gwx::gateway {

listener_tls::listener_tls(const std::string& listener, net::tls_server_config config)
    : listener_(listener), context_(net::tls_context::make_server(std::move(config))) {}

std::optional<std::string> listener_tls::reload() {
  return context_->reload();
}

void listener_tls::attach(metrics::registry& reg, const std::string& listener) {
  auto& family = reg.add_counter("gwx_gateway_tls_handshake_failures_total",
                                 "Failed TLS handshakes on client listeners, by listener and "
                                 "reason.",
                                 {"listener", "reason"});
  for (const auto reason : net::all_tls_failures()) {
    counters_[static_cast<std::size_t>(reason)] = family.with({listener, to_string(reason)});
  }
  listener_ = listener;
}

void listener_tls::handshake_failed(net::tls_failure reason, std::string_view detail,
                                    std::string_view remote) {
  const auto index = static_cast<std::size_t>(reason);
  counters_[index].inc();
  counts_[index].fetch_add(1, std::memory_order_relaxed);
  const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::steady_clock::now().time_since_epoch())
                       .count();
  auto last = last_log_ms_.load(std::memory_order_relaxed);
  const auto interval = std::chrono::duration_cast<std::chrono::milliseconds>(k_log_interval);
  if ((last >= 0 && now - last < interval.count()) ||
      !last_log_ms_.compare_exchange_strong(last, now, std::memory_order_relaxed)) {
    unlogged_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  const auto others = unlogged_.exchange(0, std::memory_order_relaxed);
  spdlog::warn("{}: TLS handshake from {} failed: {}{}{}", listener_, remote, to_string(reason),
               detail.empty() ? "" : " (" + std::string(detail) + ")",
               others == 0 ? std::string{}
                           : " [" + std::to_string(others) +
                                 " more failed handshake(s) not logged since the last line]");
}

std::uint64_t listener_tls::failures(net::tls_failure reason) const {
  return counts_[static_cast<std::size_t>(reason)].load(std::memory_order_relaxed);
}

}  // namespace gwx::gateway
