// gateway_watcher against in-process registers: snapshot then changes, merging several
// registers, riding out a register that goes down or restarts, and stopping promptly.
#include <gtest/gtest.h>

#include "tests/unit/registry/registry_test_support.hpp"

namespace gwx::registry::test {
namespace {

using ids = std::vector<std::string>;

bool never_lacked(const std::vector<ids>& history, const std::string& id, std::size_t from = 0) {
  for (std::size_t i = from; i < history.size(); ++i) {
    if (std::find(history[i].begin(), history[i].end(), id) == history[i].end()) {
      return false;
    }
  }
  return true;
}

TEST(GatewayWatcher, GetsSnapshotThenFollowsAddedAndRemoved) {
  auto server = start_register();
  auto stub = make_stub(server->port());
  ASSERT_TRUE(heartbeat(*stub, make_info("gw-a"), 60000).ok());

  change_recorder changes;
  gateway_watcher watcher({local(server->port())}, "", "test", changes.handler());
  watcher.start();
  ASSERT_TRUE(watcher.wait_for_snapshot(5s));
  ASSERT_TRUE(eventually([&] { return changes.history().size() == 1; }));
  const auto first = watcher.current();
  ASSERT_EQ(first.size(), 1U);
  EXPECT_EQ(first[0].gateway_id, "gw-a");
  EXPECT_EQ(first[0].internal_address, "127.0.0.1:9100");
  EXPECT_EQ(first[0].listeners, ids{"ws://127.0.0.1:8080/"});
  EXPECT_EQ(first[0].name, "test-gw-a");

  ASSERT_TRUE(heartbeat(*stub, make_info("gw-c"), 60000).ok());
  ASSERT_TRUE(eventually([&] { return ids_of(watcher.current()) == ids{"gw-a", "gw-c"}; }));
  // A renewal changes nothing, so it must not produce a callback.
  ASSERT_TRUE(heartbeat(*stub, make_info("gw-a"), 60000).ok());
  ASSERT_TRUE(heartbeat(*stub, make_info("gw-b"), 60000).ok());
  ASSERT_TRUE(withdraw(*stub, "gw-a").ok());
  ASSERT_TRUE(eventually([&] { return changes.last() == ids{"gw-b", "gw-c"}; }));

  EXPECT_EQ(
      changes.history(),
      (std::vector<ids>{{"gw-a"}, {"gw-a", "gw-c"}, {"gw-a", "gw-b", "gw-c"}, {"gw-b", "gw-c"}}));
  watcher.stop();
}

TEST(GatewayWatcher, SeesLapsedGatewayRemoved) {
  auto server = start_register();
  auto stub = make_stub(server->port());
  change_recorder changes;
  gateway_watcher watcher({local(server->port())}, "", "test", changes.handler());
  watcher.start();
  ASSERT_TRUE(watcher.wait_for_snapshot(5s));
  ASSERT_TRUE(heartbeat(*stub, make_info("gw-1"), 1000).ok());
  ASSERT_TRUE(eventually([&] { return changes.history().size() == 2; }, 5s));
  EXPECT_EQ(changes.history(), (std::vector<ids>{{"gw-1"}, {}}));
  EXPECT_TRUE(watcher.current().empty());
}

TEST(GatewayWatcher, MergesRegistersAndKeepsTheSetWhenOneGoesDown) {
  log_capture logs;
  auto a = start_register();
  auto b = start_register();
  const auto a_address = a->address();
  lease_keeper keeper({local(a->port()), local(b->port())}, "", {"gw-1", "127.0.0.1:9100", {}, "n"},
                      3000ms);
  keeper.start();
  ASSERT_TRUE(eventually(
      [&] { return a->service().lease_count() == 1 && b->service().lease_count() == 1; }));

  change_recorder changes;
  gateway_watcher watcher({local(a->port()), local(b->port())}, "", "test", changes.handler());
  watcher.start();
  ASSERT_TRUE(eventually([&] { return ids_of(watcher.current()) == ids{"gw-1"}; }));
  // Only in b: the merge is a union.
  auto b_stub = make_stub(b->port());
  ASSERT_TRUE(heartbeat(*b_stub, make_info("gw-2"), 60000).ok());
  ASSERT_TRUE(eventually([&] { return ids_of(watcher.current()) == ids{"gw-1", "gw-2"}; }));

  a->shutdown();
  ASSERT_TRUE(eventually([&] {
    return logs.count({"gateway watcher", a_address, "unreachable"}) == 1;
  })) << logs.text();
  EXPECT_EQ(ids_of(watcher.current()), (ids{"gw-1", "gw-2"}));
  EXPECT_TRUE(never_lacked(changes.history(), "gw-1"));

  // The surviving register still drives changes.
  ASSERT_TRUE(withdraw(*b_stub, "gw-2").ok());
  ASSERT_TRUE(eventually([&] { return ids_of(watcher.current()) == ids{"gw-1"}; }));
  EXPECT_EQ(logs.count({"gateway watcher", a_address, "unreachable"}), 1U)
      << "logged once per transition, not per retry";
  watcher.stop();
  keeper.stop();
}

TEST(GatewayWatcher, RecoversWhenARegisterRestartsOnTheSamePort) {
  log_capture logs;
  auto server = start_register();
  const auto port = server->port();
  lease_keeper keeper({local(port)}, "", {"gw-1", "127.0.0.1:9100", {}, "n"}, 1000ms);
  keeper.start();
  change_recorder changes;
  gateway_watcher watcher({local(port)}, "", "test", changes.handler());
  watcher.start();
  ASSERT_TRUE(eventually([&] { return ids_of(watcher.current()) == ids{"gw-1"}; }));

  server.reset();
  server = start_register({}, port);
  // A fresh register knows nothing: the keeper's next heartbeat creates the lease again
  // (created=true, which the register logs as a registration).
  ASSERT_TRUE(eventually([&] { return server->service().lease_count() == 1; }));
  EXPECT_TRUE(eventually([&] {
    return logs.count({"gateway gw-1", "registered by"}) == 2;
  })) << logs.text();
  ASSERT_TRUE(eventually([&] { return server->service().watcher_count() == 1; }));

  auto stub = make_stub(port);
  ASSERT_TRUE(heartbeat(*stub, make_info("gw-2"), 60000).ok());
  ASSERT_TRUE(eventually([&] { return changes.last() == ids{"gw-1", "gw-2"}; }));
  EXPECT_TRUE(never_lacked(changes.history(), "gw-1"))
      << "the restart must not make workers drop a live gateway";
  EXPECT_EQ(logs.count({"gateway watcher", "up, watching"}), 2U) << logs.text();
  watcher.stop();
  keeper.stop();
}

TEST(GatewayWatcher, DropsAGatewayARestartedRegisterNeverRelearns) {
  auto server = start_register();
  const auto port = server->port();
  auto stub = make_stub(port);
  ASSERT_TRUE(heartbeat(*stub, make_info("gw-gone"), 60000).ok());
  change_recorder changes;
  gateway_watcher watcher({local(port)}, "", "test", changes.handler());
  watcher.start();
  ASSERT_TRUE(eventually([&] { return ids_of(watcher.current()) == ids{"gw-gone"}; }));

  server.reset();
  server = start_register({}, port);
  ASSERT_TRUE(eventually([&] { return server->service().watcher_count() == 1; }));
  const auto reconnected = std::chrono::steady_clock::now();
  EXPECT_EQ(ids_of(watcher.current()), ids{"gw-gone"}) << "kept while gateways re-register";
  ASSERT_TRUE(
      eventually([&] { return changes.history().size() > 1 && changes.last().empty(); }, 10s));
  EXPECT_GE(std::chrono::steady_clock::now() - reconnected, 4s);
  EXPECT_EQ(changes.history(), (std::vector<ids>{{"gw-gone"}, {}}));
  watcher.stop();
}

TEST(GatewayWatcher, ALiveRegisterOverridesWhatADownOneLastSaid) {
  log_capture logs;
  auto a = start_register();
  auto b = start_register();
  const auto a_address = a->address();
  auto a_stub = make_stub(a->port());
  auto b_stub = make_stub(b->port());
  ASSERT_TRUE(heartbeat(*a_stub, make_info("gw-both"), 60000).ok());
  ASSERT_TRUE(heartbeat(*b_stub, make_info("gw-both"), 60000).ok());
  ASSERT_TRUE(heartbeat(*a_stub, make_info("gw-only-a"), 60000).ok());
  change_recorder changes;
  gateway_watcher watcher({local(a->port()), local(b->port())}, "", "test", changes.handler());
  watcher.start();
  ASSERT_TRUE(eventually([&] { return changes.last() == ids{"gw-both", "gw-only-a"}; }));
  // Either register's snapshot may come first; count from the full set.
  const auto before = changes.history().size();

  a->shutdown();
  ASSERT_TRUE(eventually([&] {
    return logs.count({"gateway watcher", a_address, "unreachable"}) == 1;
  })) << logs.text();
  const auto a_down = std::chrono::steady_clock::now();
  // A removal from the live register wins at once over what the dead one last said.
  ASSERT_TRUE(withdraw(*b_stub, "gw-both").ok());
  ASSERT_TRUE(eventually([&] { return changes.last() == ids{"gw-only-a"}; }));
  EXPECT_LT(std::chrono::steady_clock::now() - a_down, 3s);
  // What only the dead register knew goes once the grace runs out.
  ASSERT_TRUE(
      eventually([&] { return changes.history().size() > 1 && changes.last().empty(); }, 10s));
  EXPECT_GE(std::chrono::steady_clock::now() - a_down, 4s);
  const auto history = changes.history();
  EXPECT_EQ(std::vector<ids>(history.begin() + static_cast<std::ptrdiff_t>(before), history.end()),
            (std::vector<ids>{{"gw-only-a"}, {}}));
  watcher.stop();
}

TEST(GatewayWatcher, KeepsTheSetWhileEveryRegisterIsDown) {
  log_capture logs;
  auto a = start_register();
  auto b = start_register();
  const auto a_address = a->address();
  const auto b_address = b->address();
  lease_keeper keeper({local(a->port()), local(b->port())}, "", {"gw-1", "127.0.0.1:9100", {}, "n"},
                      1000ms);
  keeper.start();
  change_recorder changes;
  gateway_watcher watcher({local(a->port()), local(b->port())}, "", "test", changes.handler());
  watcher.start();
  ASSERT_TRUE(eventually([&] { return ids_of(watcher.current()) == ids{"gw-1"}; }));

  a->shutdown();
  b->shutdown();
  ASSERT_TRUE(eventually([&] {
    return logs.count({"gateway watcher", a_address, "unreachable"}) == 1 &&
           logs.count({"gateway watcher", b_address, "unreachable"}) == 1;
  })) << logs.text();
  // Well past the grace and the 1 s lease: with no register to say otherwise, nothing changes.
  EXPECT_FALSE(eventually([&] { return watcher.current().empty(); }, 6500ms));
  EXPECT_EQ(changes.history(), std::vector<ids>{{"gw-1"}});
  watcher.stop();
  keeper.stop();
}

TEST(GatewayWatcher, StopIsPromptWhileStreamingAndWhileBackingOff) {
  log_capture logs;
  auto server = start_register();
  const auto dead = dead_port();
  gateway_watcher watcher({local(server->port()), local(dead)}, "", "test", nullptr);
  watcher.start();
  ASSERT_TRUE(watcher.wait_for_snapshot(5s));
  ASSERT_TRUE(eventually([&] {
    return logs.count({"gateway watcher", local(dead).to_string(), "unreachable"}) == 1;
  }));
  const auto begin = std::chrono::steady_clock::now();
  watcher.stop();
  EXPECT_LT(std::chrono::steady_clock::now() - begin, 1s);
  watcher.stop();
  EXPECT_TRUE(eventually([&] { return server->service().watcher_count() == 0; }));
}

}  // namespace
}  // namespace gwx::registry::test
