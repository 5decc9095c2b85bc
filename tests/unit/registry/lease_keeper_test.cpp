// lease_keeper against in-process registers: registering with each, independence from a dead
// register, and withdrawing on stop.
#include <gtest/gtest.h>

#include "tests/unit/registry/registry_test_support.hpp"

namespace gwx::registry::test {
namespace {

TEST(LeaseKeeper, RegistersWithEveryRegisterAndWithdrawsOnStop) {
  auto a = start_register();
  auto b = start_register();
  lease_keeper keeper({local(a->port()), local(b->port())}, "",
                      {"gw-1", "127.0.0.1:9100", {"ws://127.0.0.1:8080/"}, "host-1"}, 10s);
  keeper.start();
  ASSERT_TRUE(eventually(
      [&] { return a->service().lease_count() == 1 && b->service().lease_count() == 1; }));

  auto stub = make_stub(a->port());
  v1::ListResponse list;
  auto context = make_context();
  ASSERT_TRUE(stub->List(context.get(), v1::ListRequest{}, &list).ok());
  ASSERT_EQ(list.gateways_size(), 1);
  const auto& info = list.gateways(0);
  EXPECT_EQ(info.gateway_id(), "gw-1");
  EXPECT_EQ(info.internal_address(), "127.0.0.1:9100");
  EXPECT_EQ(info.listeners_size(), 1);
  EXPECT_EQ(info.name(), "host-1");
  EXPECT_GT(info.started_unix_ms(), 0);

  keeper.stop();
  EXPECT_EQ(a->service().lease_count(), 0U) << "stop() withdraws before it returns";
  EXPECT_EQ(b->service().lease_count(), 0U);
  keeper.stop();
}

TEST(LeaseKeeper, KeepsTheLeaseAliveBeyondItsTtl) {
  log_capture logs;
  auto server = start_register();
  auto stub = make_stub(server->port());
  lease_keeper keeper({local(server->port())}, "", {"gw-1", "127.0.0.1:9100", {}, "n"}, 1000ms);
  keeper.start();
  ASSERT_TRUE(eventually([&] { return server->service().lease_count() == 1; }));
  // Well past the 1 s lease: still there, and never dropped in between.
  const auto deadline = std::chrono::steady_clock::now() + 2500ms;
  EXPECT_FALSE(eventually([&] { return logs.count({"gw-1", "lapsed"}) > 0; }, 2500ms));
  EXPECT_GE(std::chrono::steady_clock::now(), deadline);
  EXPECT_EQ(list_ids(*stub), std::vector<std::string>{"gw-1"});
  keeper.stop();
}

TEST(LeaseKeeper, DeadRegisterDoesNotDelayTheOthersNorStop) {
  log_capture logs;
  const auto dead = dead_port();
  auto live = start_register();
  lease_keeper keeper({local(dead), local(live->port())}, "", {"gw-1", "127.0.0.1:9100", {}, "n"},
                      1000ms);
  const auto started = std::chrono::steady_clock::now();
  keeper.start();
  ASSERT_TRUE(eventually([&] { return live->service().lease_count() == 1; }));
  EXPECT_LT(std::chrono::steady_clock::now() - started, 2s);
  ASSERT_TRUE(eventually([&] {
    return logs.count({"lease keeper", local(dead).to_string(), "unreachable"}) == 1;
  }));

  const auto begin = std::chrono::steady_clock::now();
  keeper.stop();
  EXPECT_LT(std::chrono::steady_clock::now() - begin, 1500ms);
  EXPECT_EQ(live->service().lease_count(), 0U);
  EXPECT_EQ(logs.count({"lease keeper", local(dead).to_string(), "unreachable"}), 1U)
      << "logged once, not per retry";
}

TEST(LeaseKeeper, ReRegistersAfterRegisterRestart) {
  log_capture logs;
  auto server = start_register();
  const auto port = server->port();
  lease_keeper keeper({local(port)}, "", {"gw-1", "127.0.0.1:9100", {}, "n"}, 1000ms);
  keeper.start();
  ASSERT_TRUE(eventually([&] { return server->service().lease_count() == 1; }));

  server->shutdown();
  server.reset();
  ASSERT_TRUE(eventually([&] {
    return logs.count({"lease keeper", "unreachable"}) == 1;
  })) << logs.text();
  server = start_register({}, port);
  ASSERT_TRUE(eventually([&] { return server->service().lease_count() == 1; }));
  // The keeper logs after the call returns, the register before it answers.
  EXPECT_TRUE(eventually([&] {
    return logs.count({"lease keeper", "gw-1 registered with"}) == 2;
  })) << "once at start, once when the register is back: "
      << logs.text();
  EXPECT_EQ(logs.count({"gateway gw-1", "registered by"}), 2U) << "created=true both times";
  keeper.stop();
}

}  // namespace
}  // namespace gwx::registry::test
