#include "common/link/link_handshake.hpp"

#include "common/link_auth.hpp"

namespace gwx::link_handshake {
namespace {

void field(std::string& out, std::string_view v) {
  const auto n = static_cast<std::uint32_t>(v.size());
  const char len[4] = {static_cast<char>(n >> 24), static_cast<char>(n >> 16),
                       static_cast<char>(n >> 8), static_cast<char>(n)};
  out.append(len, 4).append(v);
}

std::string proof(const std::string& secret, std::string_view label,
                  std::initializer_list<std::string_view> fields) {
  std::string data(label);
  for (const auto f : fields) {
    field(data, f);
  }
  return link_auth::hmac_sha256(secret, data);
}

step failed(std::string reason, std::optional<link::v2::Frame> reply = std::nullopt) {
  step s;
  s.result = step::outcome::failed;
  s.reason = std::move(reason);
  s.reply = std::move(reply);
  return s;
}

link::v2::Frame reject(const std::string& reason) {
  link::v2::Frame f;
  f.mutable_reject()->set_reason(reason);
  return f;
}

constexpr std::size_t k_nonce_size = 16;

}  // namespace

std::string peer_proof(const std::string& secret, const std::string& gateway_id,
                       link::v2::PeerRole role, const std::string& name,
                       const std::string& gateway_nonce, const std::string& peer_nonce) {
  return proof(
      secret, "gwx-link-v2 peer",
      {gateway_id, std::to_string(static_cast<int>(role)), name, gateway_nonce, peer_nonce});
}

std::string gateway_proof(const std::string& secret, const std::string& gateway_id,
                          const std::string& address, link::v2::PeerRole role,
                          const std::string& name, const std::string& gateway_nonce,
                          const std::string& peer_nonce) {
  return proof(secret, "gwx-link-v2 gateway",
               {gateway_id, address, std::to_string(static_cast<int>(role)), name, gateway_nonce,
                peer_nonce});
}

// ---- gateway side ----

gateway_side::gateway_side(std::string secret, std::string gateway_id,
                           std::string advertised_address, bool redelivers)
    : secret_(std::move(secret)),
      gateway_id_(std::move(gateway_id)),
      address_(std::move(advertised_address)),
      redelivers_(redelivers) {}

link::v2::Frame gateway_side::challenge() {
  nonce_ = link_auth::make_nonce();
  link::v2::Frame f;
  auto* c = f.mutable_challenge();
  c->set_nonce(nonce_);
  c->set_gateway_id(gateway_id_);
  c->set_protocol_version(2);
  return f;
}

step gateway_side::on_frame(const link::v2::Frame& frame) {
  if (done_ || nonce_.empty()) {
    return failed("handshake frame out of order");
  }
  if (!frame.has_hello()) {
    return failed("sent a frame other than hello before authenticating", reject("hello expected"));
  }
  done_ = true;
  const auto& h = frame.hello();
  if (h.role() != link::v2::PEER_ROLE_WORKER && h.role() != link::v2::PEER_ROLE_CLIENT) {
    return failed("unknown role", reject("unknown role"));
  }
  if (h.nonce().size() != k_nonce_size) {
    return failed("bad nonce", reject("authentication failed"));
  }
  const auto expected = peer_proof(secret_, gateway_id_, h.role(), h.name(), nonce_, h.nonce());
  if (!link_auth::equal(h.proof(), expected)) {
    return failed("authentication failed (wrong secret, or a relay changed the identities)",
                  reject("authentication failed"));
  }
  role_ = h.role();
  name_ = h.name().substr(0, k_max_name);
  step s;
  s.result = step::outcome::up;
  s.reply.emplace();
  auto* w = s.reply->mutable_welcome();
  w->set_proof(
      gateway_proof(secret_, gateway_id_, address_, h.role(), h.name(), nonce_, h.nonce()));
  w->set_gateway_id(gateway_id_);
  w->set_internal_address(address_);
  w->set_redelivers_unacknowledged(redelivers_);
  return s;
}

// ---- peer side ----

peer_side::peer_side(std::string secret, link::v2::PeerRole role, std::string name,
                     std::string expected_gateway_id)
    : secret_(std::move(secret)),
      role_(role),
      name_(std::move(name)),
      expected_id_(std::move(expected_gateway_id)) {}

step peer_side::on_frame(const link::v2::Frame& frame) {
  if (done_) {
    return failed("handshake frame after the handshake");
  }
  if (frame.has_challenge()) {
    const auto& c = frame.challenge();
    if (!gateway_nonce_.empty()) {
      return failed("second challenge");
    }
    if (c.gateway_id() != expected_id_) {
      return failed("gateway there is now " + c.gateway_id().substr(0, 64) + " (restarted?)");
    }
    if (c.nonce().size() != k_nonce_size) {
      return failed("challenge without a proper nonce");
    }
    gateway_nonce_ = c.nonce();
    nonce_ = link_auth::make_nonce();
    step s;
    s.reply.emplace();
    auto* h = s.reply->mutable_hello();
    h->set_role(role_);
    h->set_name(name_);
    h->set_nonce(nonce_);
    h->set_proof(peer_proof(secret_, expected_id_, role_, name_, gateway_nonce_, nonce_));
    return s;
  }
  if (frame.has_welcome()) {
    done_ = true;
    const auto& w = frame.welcome();
    if (gateway_nonce_.empty()) {
      return failed("welcome before challenge");
    }
    if (w.gateway_id() != expected_id_) {
      return failed("welcome from gateway " + w.gateway_id().substr(0, 64) + ", expected " +
                    expected_id_);
    }
    const auto expected = gateway_proof(secret_, expected_id_, w.internal_address(), role_, name_,
                                        gateway_nonce_, nonce_);
    if (!link_auth::equal(w.proof(), expected)) {
      return failed("the gateway's proof is wrong (secrets differ, or a relay changed it)");
    }
    address_ = w.internal_address();
    redelivers_ = w.redelivers_unacknowledged();
    step s;
    s.result = step::outcome::up;
    return s;
  }
  if (frame.has_reject()) {
    done_ = true;
    return failed("refused by the gateway: " + frame.reject().reason().substr(0, 200));
  }
  done_ = true;
  return failed("unexpected frame before welcome");
}

}  // namespace gwx::link_handshake
