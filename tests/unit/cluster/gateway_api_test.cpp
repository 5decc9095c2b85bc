// The Gateway API over an in-memory cluster of gateways: what each call sends where, and how
// the answers of several gateways merge (sums, sorted distinct unions, absent keys filled in,
// missing gateways reported).
#include "common/cluster/gateway_api.hpp"

#include <gtest/gtest.h>

#include "tests/unit/cluster/fake_cluster.hpp"

namespace gwx {
namespace {

using fakes::fake_cluster;
using fakes::sorted;
using string_list = std::vector<std::string>;

class GatewayApiTest : public ::testing::Test, protected fakes::fake_api {
 protected:
  GatewayApiTest() : g1_(cluster->add_gateway(7001, 0x11)), g2_(cluster->add_gateway(7002, 0x22)) {
    a1_ = cluster->connect(g1_);
    a2_ = cluster->connect(g1_);
    b1_ = cluster->connect(g2_);
    b2_ = cluster->connect(g2_);
  }

  fake_cluster::gateway& g1_;
  fake_cluster::gateway& g2_;
  std::string a1_, a2_, b1_, b2_;
};

TEST_F(GatewayApiTest, SendToClientReachesOnlyThatClient) {
  api.send_to_client(b1_, "hi");
  api.send_to_client(b1_, message::bytes(std::string("\0\1", 2)));
  EXPECT_EQ(cluster->inbox(b1_), (string_list{"hi", std::string("\0\1", 2)}));
  EXPECT_TRUE(cluster->find(b1_)->inbox.at(1).binary);
  EXPECT_TRUE(cluster->inbox(a1_).empty());
  EXPECT_TRUE(cluster->inbox(b2_).empty());
  // Only b1's gateway was told anything.
  for (const auto& [gw, cmd] : cluster->sent()) {
    EXPECT_EQ(gw, g2_.address);
  }
}

TEST_F(GatewayApiTest, SendToClientsSendsOneCommandPerGateway) {
  api.send_to_clients({a1_, b1_, b2_}, "x");
  EXPECT_EQ(cluster->sent().size(), 2U);
  EXPECT_EQ(cluster->inbox(a1_), string_list{"x"});
  EXPECT_EQ(cluster->inbox(b2_), string_list{"x"});
  EXPECT_TRUE(cluster->inbox(a2_).empty());
}

TEST_F(GatewayApiTest, SendToAllWithOnlyIdsSkipsGatewaysHoldingNone) {
  // An empty "only" list means everyone on the gateway: a gateway holding none of the ids
  // must not get the command at all.
  api.send_to_all("only", {a1_});
  EXPECT_EQ(cluster->inbox(a1_), string_list{"only"});
  EXPECT_TRUE(cluster->inbox(b1_).empty());
  EXPECT_TRUE(cluster->inbox(b2_).empty());
  EXPECT_TRUE(cluster->inbox(a2_).empty());
}

TEST_F(GatewayApiTest, SendToAllAndGroupHonourExcludes) {
  api.send_to_all("all", {}, {a2_, b1_});
  EXPECT_EQ(cluster->inbox(a1_), string_list{"all"});
  EXPECT_EQ(cluster->inbox(b2_), string_list{"all"});
  EXPECT_TRUE(cluster->inbox(a2_).empty());
  EXPECT_TRUE(cluster->inbox(b1_).empty());
  cluster->clear_inboxes();
  for (const auto& id : {a1_, a2_, b1_}) {
    api.join_group(id, "g");
  }
  api.join_group(b2_, "h");
  api.send_to_group({"g", "h"}, "grp", {a1_});
  EXPECT_TRUE(cluster->inbox(a1_).empty());
  EXPECT_EQ(cluster->inbox(a2_), string_list{"grp"});
  EXPECT_EQ(cluster->inbox(b1_), string_list{"grp"});
  EXPECT_EQ(cluster->inbox(b2_), string_list{"grp"});
}

TEST_F(GatewayApiTest, UidQueriesMergeAcrossGateways) {
  api.bind_uid(a1_, "alice");
  api.bind_uid(b2_, "alice");
  api.bind_uid(b1_, "bob");
  EXPECT_TRUE(api.is_uid_online("alice").value);
  EXPECT_FALSE(api.is_uid_online("nobody").value);
  EXPECT_EQ(api.get_client_ids_by_uid("alice").value, sorted({a1_, b2_}));
  const auto batch = api.get_client_ids_by_uids({"alice", "bob", "nobody"}).value;
  EXPECT_EQ(batch.at("alice"), sorted({a1_, b2_}));
  EXPECT_EQ(batch.at("bob"), string_list{b1_});
  EXPECT_TRUE(batch.at("nobody").empty());
  const auto online = api.is_uid_online_batch({"alice", "nobody"}).value;
  EXPECT_EQ(online, (std::map<std::string, bool>{{"alice", true}, {"nobody", false}}));
  EXPECT_EQ(api.get_uid_by_client_id(b1_).value, "bob");
  EXPECT_EQ(api.get_uid_by_client_id(a2_).value, "");
  // alice is on both gateways: counted once.
  EXPECT_EQ(api.get_all_uids().value, (string_list{"alice", "bob"}));
  EXPECT_EQ(api.get_all_uid_count().value, 2U);
  api.send_to_uid({"alice"}, "to-alice");
  EXPECT_EQ(cluster->inbox(a1_), string_list{"to-alice"});
  EXPECT_EQ(cluster->inbox(b2_), string_list{"to-alice"});
  EXPECT_TRUE(cluster->inbox(b1_).empty());
  api.unbind_uid(a1_);
  EXPECT_EQ(api.get_client_ids_by_uid("alice").value, string_list{b2_});
}

TEST_F(GatewayApiTest, GroupQueriesMergeAcrossGateways) {
  api.join_group(a1_, "g");
  api.join_group(b1_, "g");
  api.join_group(b2_, "g");
  api.join_group(b2_, "h");
  api.bind_uid(a1_, "u");
  api.bind_uid(b1_, "u");
  api.bind_uid(b2_, "v");
  api.set_session(b1_, {{"k", "v"}});
  EXPECT_EQ(api.get_client_count_by_group("g").value, 3U);
  EXPECT_EQ(api.get_client_count_by_groups({"g", "h", "none"}).value,
            (std::map<std::string, std::uint64_t>{{"g", 3}, {"h", 1}, {"none", 0}}));
  EXPECT_EQ(api.get_client_ids_by_group("g").value, sorted({a1_, b1_, b2_}));
  EXPECT_EQ(api.get_uids_by_group("g").value, (string_list{"u", "v"}));
  EXPECT_EQ(api.get_uid_count_by_group("g").value, 2U);  // u on two gateways counts once
  EXPECT_EQ(api.get_all_group_ids().value, (string_list{"g", "h"}));
  EXPECT_EQ(api.get_groups_of_client(b2_).value, (string_list{"g", "h"}));
  const auto sessions = api.get_client_sessions_by_group("g").value;
  EXPECT_EQ(sessions.size(), 3U);
  EXPECT_EQ(sessions.at(b1_), (session_map{{"k", "v"}}));
  EXPECT_TRUE(sessions.at(a1_).empty());
  api.leave_group(b2_, "g");
  EXPECT_EQ(api.get_client_count_by_group("g").value, 2U);
  api.ungroup("g");
  EXPECT_EQ(api.get_client_count_by_group("g").value, 0U);
  EXPECT_EQ(api.get_all_group_ids().value, string_list{"h"});
}

TEST_F(GatewayApiTest, PresenceAndCounts) {
  EXPECT_EQ(api.get_all_client_count().value, 4U);
  EXPECT_EQ(api.get_all_client_ids().value, sorted({a1_, a2_, b1_, b2_}));
  EXPECT_TRUE(api.is_online(b2_).value);
  EXPECT_FALSE(api.is_online("junk").value);
  const auto stale = make_client_id("127.0.0.1", 7002, 0x99, 1);  // g2's address, old epoch
  EXPECT_FALSE(api.is_online(stale).value);
  EXPECT_EQ(api.is_online_batch({a1_, b1_, stale}).value,
            (std::map<std::string, bool>{{a1_, true}, {b1_, true}, {stale, false}}));
  api.close_client(a1_, message("bye"));
  api.destroy_client(b1_);
  EXPECT_EQ(cluster->inbox(a1_), string_list{"bye"});
  EXPECT_FALSE(api.is_online(a1_).value);
  EXPECT_EQ(api.get_all_client_count().value, 2U);
  const auto stats = api.get_stats().value;
  ASSERT_EQ(stats.size(), 2U);
  EXPECT_EQ(stats[0].internal_address, g1_.address);
  EXPECT_EQ(stats[0].clients, 1U);
  EXPECT_EQ(stats[1].clients, 1U);
}

TEST_F(GatewayApiTest, SessionsReplaceMergeAndReadBack) {
  api.set_session(a1_, {{"a", "1"}, {"b", "2"}});
  api.update_session(a1_, {{"b", "3"}, {"c", "4"}}, {"a"});
  EXPECT_EQ(api.get_session(a1_).value, (session_map{{"b", "3"}, {"c", "4"}}));
  api.set_session(a1_, {{"z", "9"}});
  EXPECT_EQ(api.get_session(a1_).value, (session_map{{"z", "9"}}));
  api.destroy_client(a1_);
  EXPECT_FALSE(api.get_session(a1_).value.has_value());
}

TEST_F(GatewayApiTest, UnansweredGatewaysAreReportedAndTheRestStillCount) {
  g2_.silent = true;
  auto r = api.get_all_client_count();
  EXPECT_EQ(r.value, 2U);
  EXPECT_EQ(r.missing_gateways, string_list{g2_.address});
  EXPECT_FALSE(r.complete());
  // A query about one client asks only its gateway, so only that one can be missing.
  EXPECT_TRUE(api.is_online(a1_).complete());
  auto b = api.is_online(b1_);
  EXPECT_FALSE(b.value);
  EXPECT_EQ(b.missing_gateways, string_list{g2_.address});
  g2_.silent = false;
  g2_.linked = false;
  EXPECT_EQ(api.get_all_uids().missing_gateways, string_list{g2_.address});
}

TEST_F(GatewayApiTest, BlockingOnTheNetworkThreadIsRefused) {
  cluster->set_network_thread(true);
  EXPECT_EQ(api.get_all_client_count().error, api_errc::would_deadlock);
  bool called = false;
  api.async_get_all_client_count([&called](result<std::uint64_t> r) {
    called = true;
    EXPECT_EQ(r.value, 4U);
  });
  EXPECT_TRUE(called);
}

}  // namespace
}  // namespace gwx
