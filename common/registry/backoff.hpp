#pragma once

#include <chrono>
#include <cstdint>
#include <random>

namespace gwx::registry {

/// Exponential backoff with jitter for reconnect loops: each delay is drawn uniformly from
/// [current/2, current], then `current` doubles up to `max`. Not thread-safe; one per loop.
class backoff {
 public:
  /// Starts at `initial`, never exceeds `max`.
  backoff(std::chrono::milliseconds initial, std::chrono::milliseconds max,
          std::uint64_t seed = std::random_device{}());

  /// The delay to wait before the next attempt; grows the next one.
  std::chrono::milliseconds next();

  /// Back to `initial`, after a success.
  void reset() { current_ = initial_; }

 private:
  std::chrono::milliseconds initial_;
  std::chrono::milliseconds max_;
  std::chrono::milliseconds current_;
  std::mt19937_64 rng_;
};

}  // namespace gwx::registry
