#include "common/registry/backoff.hpp"

#include <algorithm>

namespace gwx::registry {

backoff::backoff(std::chrono::milliseconds initial, std::chrono::milliseconds max,
                 std::uint64_t seed)
    : initial_(std::max(initial, std::chrono::milliseconds(1))),
      max_(std::max(max, initial_)),
      current_(initial_),
      rng_(seed) {}

std::chrono::milliseconds backoff::next() {
  // Jitter keeps many peers that lost the same register from reconnecting in lockstep.
  std::uniform_int_distribution<std::int64_t> pick(current_.count() / 2, current_.count());
  const std::chrono::milliseconds delay(pick(rng_));
  current_ = std::min(current_ * 2, max_);
  return std::max(delay, std::chrono::milliseconds(1));
}

}  // namespace gwx::registry
