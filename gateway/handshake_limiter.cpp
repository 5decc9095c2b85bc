#include "gateway/handshake_limiter.hpp"

#include <cstring>
#include <random>
#include <stdexcept>

namespace gwx::gateway {
namespace {

std::uint64_t mix(std::uint64_t x) {
  // splitmix64's finaliser: every input bit reaches every output bit.
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

std::uint64_t random_seed() {
  std::random_device rd;
  return (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
}

}  // namespace

void handshake_slot::release() {
  if (held_) {
    held_->owner->release(held_->address);
    held_.reset();
  }
}

std::shared_ptr<handshake_limiter> handshake_limiter::create(std::size_t limit) {
  return std::make_shared<handshake_limiter>(limit);
}

handshake_limiter::handshake_limiter(std::size_t limit)
    : limit_(limit), counts_(0, key_hash{random_seed()}) {
  if (limit == 0) {
    throw std::invalid_argument("max_handshakes_per_ip must be at least 1");
  }
}

std::size_t handshake_limiter::key_hash::operator()(const key& k) const noexcept {
  // Seeded per limiter: clients choose their addresses (an IPv6 /64 holds many), so they must
  // not be able to aim them at one bucket.
  std::uint64_t hi = 0;
  std::uint64_t lo = 0;
  std::memcpy(&hi, k.data(), sizeof hi);
  std::memcpy(&lo, k.data() + sizeof hi, sizeof lo);
  return static_cast<std::size_t>(mix(mix(hi ^ seed) ^ lo));
}

handshake_limiter::key handshake_limiter::key_of(const asio::ip::address& address) {
  if (address.is_v4()) {
    return asio::ip::make_address_v6(asio::ip::v4_mapped, address.to_v4()).to_bytes();
  }
  const auto v6 = address.to_v6();
  auto k = v6.to_bytes();
  if (!v6.is_v4_mapped()) {  // an IPv4-mapped one is already the same key as its IPv4 form
    // One IPv6 host usually holds a whole /64: counted per address, it could open as many
    // unfinished handshakes as it likes.
    std::memset(k.data() + k_v6_prefix_bytes, 0, k.size() - k_v6_prefix_bytes);
  }
  return k;
}

std::string handshake_limiter::describe(const asio::ip::address& address) {
  if (address.is_v4()) {
    return address.to_string();
  }
  const auto v6 = address.to_v6();
  if (v6.is_v4_mapped()) {
    return asio::ip::make_address_v4(asio::ip::v4_mapped, v6).to_string();
  }
  return asio::ip::address_v6(key_of(address)).to_string() + "/64";
}

handshake_slot handshake_limiter::try_acquire(const asio::ip::address& address) {
  // Made before the count is taken: nothing can throw once it is.
  auto held = std::make_unique<handshake_slot::held>(
      handshake_slot::held{shared_from_this(), key_of(address)});
  std::lock_guard lock(mutex_);
  auto& n = counts_[held->address];
  if (n >= limit_) {
    return {};  // n > 0: the entry was there before, none is left behind
  }
  ++n;
  return handshake_slot(std::move(held));
}

void handshake_limiter::release(const key& k) {
  std::lock_guard lock(mutex_);
  const auto it = counts_.find(k);
  if (it == counts_.end()) {
    return;  // cannot happen: a slot is released once
  }
  if (--it->second == 0) {
    counts_.erase(it);
  }
}

std::size_t handshake_limiter::count(const asio::ip::address& address) const {
  std::lock_guard lock(mutex_);
  const auto it = counts_.find(key_of(address));
  return it == counts_.end() ? 0 : it->second;
}

std::size_t handshake_limiter::addresses() const {
  std::lock_guard lock(mutex_);
  return counts_.size();
}

}  // namespace gwx::gateway
