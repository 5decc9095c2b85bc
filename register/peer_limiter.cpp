#include "register/peer_limiter.hpp"

#include <algorithm>

namespace gwx::registry {

std::string peer_host(std::string_view peer) {
  const auto scheme = peer.find(':');
  if (scheme == std::string_view::npos) {
    return std::string(peer);
  }
  const auto kind = peer.substr(0, scheme);
  auto rest = peer.substr(scheme + 1);
  if (kind == "ipv6" && !rest.empty() && rest.front() == '[') {
    const auto close = rest.find(']');
    if (close != std::string_view::npos) {
      return std::string(rest.substr(1, close - 1));
    }
  }
  if (kind == "ipv4") {
    return std::string(rest.substr(0, rest.rfind(':')));
  }
  return std::string(peer);
}

peer_limiter::peer_limiter(double rate, double burst)
    : rate_(std::max(rate, 0.0)), burst_(std::max(burst, 1.0)) {}

bool peer_limiter::allow(const std::string& peer, clock::time_point now) {
  if (rate_ <= 0) {
    return true;
  }
  std::lock_guard lock(mutex_);
  auto [it, inserted] = buckets_.try_emplace(peer, bucket{burst_, now});
  auto& b = it->second;
  if (!inserted && now > b.updated) {
    const std::chrono::duration<double> elapsed = now - b.updated;
    b.tokens = std::min(burst_, b.tokens + elapsed.count() * rate_);
    b.updated = now;
  }
  const bool allowed = b.tokens >= 1.0;
  if (allowed) {
    b.tokens -= 1.0;
  }
  if (inserted && buckets_.size() >= prune_at_) {
    forget_idle(now);
  }
  return allowed;
}

void peer_limiter::forget_idle(clock::time_point now) {
  // A bucket that would be full again holds nothing worth remembering.
  std::erase_if(buckets_, [&](const auto& item) {
    const std::chrono::duration<double> elapsed = now - item.second.updated;
    return item.second.tokens + elapsed.count() * rate_ >= burst_;
  });
  // Amortised: the next pass waits until the table doubled from what is left.
  prune_at_ = std::max<std::size_t>(1024, buckets_.size() * 2);
}

std::size_t peer_limiter::tracked() const {
  std::lock_guard lock(mutex_);
  return buckets_.size();
}

}  // namespace gwx::registry
