#include "common/link/link_handshake.hpp"

#include <gtest/gtest.h>

namespace gwx::link_handshake {
namespace {

using outcome = step::outcome;

struct pair_under_test {
  gateway_side gateway{"s3cret", "gw-1", "10.0.0.1:7800", true};
  peer_side peer{"s3cret", link::v2::PEER_ROLE_WORKER, "worker-a", "gw-1"};
};

TEST(link_handshake, both_sides_come_up_and_learn_each_other) {
  pair_under_test t;
  const auto hello = t.peer.on_frame(t.gateway.challenge());
  ASSERT_EQ(hello.result, outcome::pending);
  ASSERT_TRUE(hello.reply && hello.reply->has_hello());
  EXPECT_EQ(hello.reply->hello().proof().size(), 32U);

  const auto welcome = t.gateway.on_frame(*hello.reply);
  ASSERT_EQ(welcome.result, outcome::up) << welcome.reason;
  EXPECT_EQ(t.gateway.role(), link::v2::PEER_ROLE_WORKER);
  EXPECT_EQ(t.gateway.name(), "worker-a");
  ASSERT_TRUE(welcome.reply && welcome.reply->has_welcome());

  const auto done = t.peer.on_frame(*welcome.reply);
  EXPECT_EQ(done.result, outcome::up) << done.reason;
  EXPECT_EQ(t.peer.gateway_address(), "10.0.0.1:7800");
  EXPECT_TRUE(t.peer.gateway_redelivers());
}

// The worker learns the gateway's delivery mode from Welcome: whether events a lost link did
// not acknowledge go to another worker (its own queued events of that link may then be skipped).
TEST(link_handshake, the_peer_learns_whether_the_gateway_redelivers) {
  for (const bool redelivers : {true, false}) {
    gateway_side gateway("s", "gw-1", "a:1", redelivers);
    peer_side peer("s", link::v2::PEER_ROLE_WORKER, "w", "gw-1");
    const auto welcome = gateway.on_frame(*peer.on_frame(gateway.challenge()).reply);
    ASSERT_EQ(welcome.result, outcome::up) << welcome.reason;
    EXPECT_EQ(welcome.reply->welcome().redelivers_unacknowledged(), redelivers);
    ASSERT_EQ(peer.on_frame(*welcome.reply).result, outcome::up);
    EXPECT_EQ(peer.gateway_redelivers(), redelivers);
  }
}

TEST(link_handshake, wrong_secret_is_refused_with_a_reject) {
  gateway_side gateway("right", "gw-1", "a:1", true);
  peer_side peer("wrong", link::v2::PEER_ROLE_WORKER, "w", "gw-1");
  const auto hello = peer.on_frame(gateway.challenge());
  const auto answer = gateway.on_frame(*hello.reply);
  EXPECT_EQ(answer.result, outcome::failed);
  ASSERT_TRUE(answer.reply && answer.reply->has_reject());
  EXPECT_EQ(answer.reply->reject().reason(), "authentication failed");
  EXPECT_EQ(answer.reason.find("right"), std::string::npos) << "never the secret";
  const auto seen = peer.on_frame(*answer.reply);
  EXPECT_EQ(seen.result, outcome::failed);
  EXPECT_EQ(seen.reason, "refused by the gateway: authentication failed");
}

// A relay listed in the register under a gateway id of its own forwards to the real gateway
// and rewrites the id in the challenge so the worker accepts it: the worker's proof then
// covers the relay's id, which the real gateway refuses.
TEST(link_handshake, relay_rewriting_the_gateway_id_cannot_link) {
  gateway_side real("s", "gw-real", "10.0.0.1:7800", true);
  peer_side worker("s", link::v2::PEER_ROLE_WORKER, "w", "gw-fake");
  auto challenge = real.challenge();
  challenge.mutable_challenge()->set_gateway_id("gw-fake");
  const auto hello = worker.on_frame(challenge);
  ASSERT_EQ(hello.result, outcome::pending);
  EXPECT_EQ(real.on_frame(*hello.reply).result, outcome::failed);
}

TEST(link_handshake, relay_rewriting_the_advertised_address_is_caught_by_the_peer) {
  pair_under_test t;
  const auto hello = t.peer.on_frame(t.gateway.challenge());
  auto welcome = *t.gateway.on_frame(*hello.reply).reply;
  welcome.mutable_welcome()->set_internal_address("198.18.0.66:7800");
  const auto done = t.peer.on_frame(welcome);
  EXPECT_EQ(done.result, outcome::failed);
  EXPECT_NE(done.reason.find("proof is wrong"), std::string::npos);
}

TEST(link_handshake, relay_rewriting_name_or_role_is_refused) {
  for (int field = 0; field < 2; ++field) {
    pair_under_test t;
    auto hello = *t.peer.on_frame(t.gateway.challenge()).reply;
    if (field == 0) {
      hello.mutable_hello()->set_name("someone-else");
    } else {
      hello.mutable_hello()->set_role(link::v2::PEER_ROLE_CLIENT);
    }
    EXPECT_EQ(t.gateway.on_frame(hello).result, outcome::failed) << field;
  }
}

TEST(link_handshake, gateway_refuses_anything_but_hello_first) {
  gateway_side gateway("s", "gw-1", "a:1", true);
  (void)gateway.challenge();
  link::v2::Frame cmd;
  cmd.mutable_command()->mutable_ungroup()->set_group("g");
  const auto r = gateway.on_frame(cmd);
  EXPECT_EQ(r.result, outcome::failed);
  EXPECT_TRUE(r.reply && r.reply->has_reject());
}

TEST(link_handshake, gateway_refuses_unknown_role_and_short_nonce) {
  {
    gateway_side gateway("s", "gw-1", "a:1", true);
    (void)gateway.challenge();
    link::v2::Frame hello;
    hello.mutable_hello()->set_nonce(std::string(16, 'n'));
    EXPECT_EQ(gateway.on_frame(hello).reply->reject().reason(), "unknown role");
  }
  {
    gateway_side gateway("s", "gw-1", "a:1", true);
    (void)gateway.challenge();
    link::v2::Frame hello;
    hello.mutable_hello()->set_role(link::v2::PEER_ROLE_WORKER);
    hello.mutable_hello()->set_nonce("short");
    EXPECT_EQ(gateway.on_frame(hello).result, outcome::failed);
  }
}

TEST(link_handshake, peer_checks_the_gateway_it_dialled) {
  gateway_side gateway("s", "gw-new", "a:1", true);
  peer_side peer("s", link::v2::PEER_ROLE_WORKER, "w", "gw-old");
  const auto r = peer.on_frame(gateway.challenge());
  EXPECT_EQ(r.result, outcome::failed);
  EXPECT_EQ(r.reason, "gateway there is now gw-new (restarted?)");
}

TEST(link_handshake, peer_refuses_welcome_before_challenge_and_a_second_challenge) {
  {
    peer_side peer("s", link::v2::PEER_ROLE_WORKER, "w", "gw-1");
    link::v2::Frame welcome;
    welcome.mutable_welcome()->set_gateway_id("gw-1");
    EXPECT_EQ(peer.on_frame(welcome).reason, "welcome before challenge");
  }
  {
    gateway_side gateway("s", "gw-1", "a:1", true);
    peer_side peer("s", link::v2::PEER_ROLE_WORKER, "w", "gw-1");
    const auto c = gateway.challenge();
    ASSERT_EQ(peer.on_frame(c).result, outcome::pending);
    EXPECT_EQ(peer.on_frame(c).reason, "second challenge");
  }
}

TEST(link_handshake, proofs_differ_by_every_bound_field) {
  const std::string n1(16, '1');
  const std::string n2(16, '2');
  const auto base = peer_proof("s", "gw", link::v2::PEER_ROLE_WORKER, "w", n1, n2);
  EXPECT_NE(base, peer_proof("s", "gx", link::v2::PEER_ROLE_WORKER, "w", n1, n2));
  EXPECT_NE(base, peer_proof("s", "gw", link::v2::PEER_ROLE_CLIENT, "w", n1, n2));
  EXPECT_NE(base, peer_proof("s", "gw", link::v2::PEER_ROLE_WORKER, "v", n1, n2));
  EXPECT_NE(base, peer_proof("s", "gw", link::v2::PEER_ROLE_WORKER, "w", n2, n1));
  // Field boundaries are length-prefixed: moving a byte from one field to the next changes it.
  EXPECT_NE(peer_proof("s", "ab", link::v2::PEER_ROLE_WORKER, "c", n1, n2),
            peer_proof("s", "a", link::v2::PEER_ROLE_WORKER, "bc", n1, n2));
  EXPECT_NE(gateway_proof("s", "gw", "a:1", link::v2::PEER_ROLE_WORKER, "w", n1, n2),
            gateway_proof("s", "gw", "a:2", link::v2::PEER_ROLE_WORKER, "w", n1, n2));
}

}  // namespace
}  // namespace gwx::link_handshake
