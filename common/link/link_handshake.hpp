#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "gwx/link/v2/link.pb.h"

namespace gwx::link_handshake {

/// The link's challenge-response, both sides, sans-I/O: frames in, frames to send and an
/// outcome out. The secret never crosses the wire. The proofs cover both nonces and the
/// identities of both ends (gateway id and advertised address, peer role and name), so a relay
/// that rewrites any of them cannot complete a handshake:
///
///   peer proof    = HMAC-SHA256(secret, "gwx-link-v2 peer"    | gateway_id | role | name
///                                       | gateway_nonce | peer_nonce)
///   gateway proof = HMAC-SHA256(secret, "gwx-link-v2 gateway" | gateway_id | address | role
///                                       | name | gateway_nonce | peer_nonce)
///
/// where | joins fields each preceded by its 4-byte big-endian length.
/// Not thread-safe; one object per connection attempt.

/// What a step of the handshake came to.
struct step {
  enum class outcome : std::uint8_t { pending, up, failed };
  outcome result = outcome::pending;
  /// A frame to send now (Hello, Welcome or Reject).
  std::optional<link::v2::Frame> reply;
  /// Why it failed (failed only); safe to log, never contains the secret.
  std::string reason;
};

/// The role's wire value, as the proofs bind it.
std::string peer_proof(const std::string& secret, const std::string& gateway_id,
                       link::v2::PeerRole role, const std::string& name,
                       const std::string& gateway_nonce, const std::string& peer_nonce);
std::string gateway_proof(const std::string& secret, const std::string& gateway_id,
                          const std::string& address, link::v2::PeerRole role,
                          const std::string& name, const std::string& gateway_nonce,
                          const std::string& peer_nonce);

/// The gateway's side: sends the Challenge, checks the Hello, answers Welcome or Reject.
class gateway_side {
 public:
  /// Longest peer name kept (a longer one is cut, not refused).
  static constexpr std::size_t k_max_name = 128;

  /// `redelivers`: the gateway keeps sent events until acknowledged and hands them to
  /// another worker when a link goes down first (at-least-once); told to the peer in Welcome.
  gateway_side(std::string secret, std::string gateway_id, std::string advertised_address,
               bool redelivers);

  /// The first frame of the link (makes a fresh nonce).
  link::v2::Frame challenge();
  /// Any frame received before the handshake is over.
  step on_frame(const link::v2::Frame& frame);

  link::v2::PeerRole role() const { return role_; }
  /// The peer's name as it proved it (cut to k_max_name).
  const std::string& name() const { return name_; }

 private:
  std::string secret_;
  std::string gateway_id_;
  std::string address_;
  bool redelivers_;
  std::string nonce_;
  link::v2::PeerRole role_ = link::v2::PEER_ROLE_UNSPECIFIED;
  std::string name_;
  bool done_ = false;
};

/// The peer's side (worker, push client): answers the Challenge with a Hello, checks the
/// gateway's Welcome.
class peer_side {
 public:
  /// `expected_gateway_id`: the id the register listed at the address dialled.
  peer_side(std::string secret, link::v2::PeerRole role, std::string name,
            std::string expected_gateway_id);

  step on_frame(const link::v2::Frame& frame);

  /// The address the gateway advertises (after `up`).
  const std::string& gateway_address() const { return address_; }
  /// Whether the gateway said it redelivers the events a lost link did not acknowledge
  /// (after `up`).
  bool gateway_redelivers() const { return redelivers_; }

 private:
  std::string secret_;
  link::v2::PeerRole role_;
  std::string name_;
  std::string expected_id_;
  std::string gateway_nonce_;
  std::string nonce_;
  std::string address_;
  bool redelivers_ = false;
  bool done_ = false;
};

}  // namespace gwx::link_handshake
