#pragma once

#include <chrono>
#include <cstddef>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace gwx::registry {

/// The host part of a gRPC peer string ("ipv4:10.0.0.5:41234" -> "10.0.0.5",
/// "ipv6:[::1]:41234" -> "::1"); other forms are returned whole. Callers behind one NAT address
/// share it.
std::string peer_host(std::string_view peer);

/// A token bucket per caller: each caller may make `rate` calls a second on average and up to
/// `burst` at once. The table forgets callers whose bucket is full again, so a caller that
/// stopped costs nothing. Time is passed in, so tests drive it. Thread-safe.
class peer_limiter {
 public:
  using clock = std::chrono::steady_clock;

  /// `rate` 0 turns limiting off.
  peer_limiter(double rate, double burst);

  /// True when `peer` may make one more call at `now` (and takes it from its bucket).
  bool allow(const std::string& peer, clock::time_point now = clock::now());

  /// Callers currently tracked.
  std::size_t tracked() const;

 private:
  struct bucket {
    double tokens;
    clock::time_point updated;
  };

  void forget_idle(clock::time_point now);

  const double rate_;
  const double burst_;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, bucket> buckets_;
  std::size_t prune_at_ = 1024;
};

}  // namespace gwx::registry
