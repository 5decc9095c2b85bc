#pragma once

#include <array>
#include <asio/ip/address.hpp>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

namespace gwx::gateway {

class handshake_limiter;

/// One connection's place in its listener's handshake_limiter: held from accept until the
/// handshake is over or the connection closes, released exactly once (by release() or, at the
/// latest, by the destructor). Move-only; one pointer wide, so a session that finished its
/// handshake carries nothing more. Not thread-safe itself (it moves with its connection from
/// the accepting thread to the connection's loop); the release is.
class handshake_slot {
 public:
  handshake_slot() = default;
  ~handshake_slot() { release(); }
  handshake_slot(handshake_slot&& other) noexcept = default;
  handshake_slot& operator=(handshake_slot&& other) noexcept {
    if (this != &other) {
      release();
      held_ = std::move(other.held_);
    }
    return *this;
  }
  handshake_slot(const handshake_slot&) = delete;
  handshake_slot& operator=(const handshake_slot&) = delete;

  /// Gives the place back (nothing when none is held).
  void release();
  /// Whether a place is held.
  explicit operator bool() const { return held_ != nullptr; }

 private:
  friend class handshake_limiter;
  struct held {
    std::shared_ptr<handshake_limiter> owner;
    std::array<unsigned char, 16> address;
  };
  explicit handshake_slot(std::unique_ptr<held> h) : held_(std::move(h)) {}

  std::unique_ptr<held> held_;
};

/// Counts one listener's connections that have not finished their handshake (WebSocket
/// upgrade, TLS handshake, an `ask=1` decision) per client address, and refuses a place past
/// `max_handshakes_per_ip`: one host cannot fill max_connections with sockets that never
/// finish. An address is counted as its IPv4 form when IPv4-mapped, and an IPv6 address as its
/// /64 network (what one host is usually given). An entry exists only while
/// its count is above 0, so the table never holds more entries than unfinished handshakes.
/// Thread-safe: places are taken where connections are accepted and given back on the
/// connections' loops; one short lock per connection, none per message.
class handshake_limiter : public std::enable_shared_from_this<handshake_limiter> {
 public:
  /// A client address as counted: 16 bytes, IPv4 as its IPv4-mapped IPv6 form, IPv6 as its
  /// /64 network (the host part zero).
  using key = std::array<unsigned char, 16>;
  /// Bytes of an IPv6 address that name its network: one host usually holds a whole /64.
  static constexpr std::size_t k_v6_prefix_bytes = 8;

  /// `limit`: unfinished handshakes one address may hold (at least 1).
  static std::shared_ptr<handshake_limiter> create(std::size_t limit);
  explicit handshake_limiter(std::size_t limit);

  /// A place for a connection from `address`; an empty slot (nothing taken) when `address`
  /// already holds `limit` of them.
  handshake_slot try_acquire(const asio::ip::address& address);

  std::size_t limit() const { return limit_; }
  /// Unfinished handshakes `address` holds now.
  std::size_t count(const asio::ip::address& address) const;
  /// Addresses holding at least one (the table's size).
  std::size_t addresses() const;

  /// How `address` is counted (IPv4-mapped IPv6 as IPv4, other IPv6 by its /64).
  static key key_of(const asio::ip::address& address);
  /// `address` as counted, for people ("192.0.2.1", "2001:db8:1:2::/64").
  static std::string describe(const asio::ip::address& address);

 private:
  friend class handshake_slot;
  struct key_hash {
    std::uint64_t seed;
    std::size_t operator()(const key& k) const noexcept;
  };
  void release(const key& k);

  const std::size_t limit_;
  mutable std::mutex mutex_;
  /// Address -> unfinished handshakes (> 0); seeded hash, as the addresses are the clients'.
  std::unordered_map<key, std::size_t, key_hash> counts_;
};

}  // namespace gwx::gateway
