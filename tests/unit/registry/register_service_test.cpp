// Component tests of the register: a real gRPC server on 127.0.0.1:0 driven by raw stubs.
#include <gtest/gtest.h>

#include "tests/unit/registry/registry_test_support.hpp"

namespace gwx::registry::test {
namespace {

TEST(RegisterService, HeartbeatRegistersAndListShowsIt) {
  auto server = start_register();
  auto stub = make_stub(server->port());

  v1::HeartbeatResponse response;
  ASSERT_TRUE(heartbeat(*stub, make_info("gw-1"), 3000, &response).ok());
  EXPECT_TRUE(response.created());
  EXPECT_EQ(response.ttl_ms(), 3000U);

  ASSERT_TRUE(heartbeat(*stub, make_info("gw-1"), 3000, &response).ok());
  EXPECT_FALSE(response.created()) << "a renewal must not count as a new registration";

  v1::ListResponse list;
  auto context = make_context();
  ASSERT_TRUE(stub->List(context.get(), v1::ListRequest{}, &list).ok());
  ASSERT_EQ(list.gateways_size(), 1);
  EXPECT_EQ(list.gateways(0).gateway_id(), "gw-1");
  EXPECT_EQ(list.gateways(0).internal_address(), "127.0.0.1:9100");
  ASSERT_EQ(list.gateways(0).listeners_size(), 1);
  EXPECT_EQ(list.gateways(0).listeners(0), "ws://127.0.0.1:8080/");
  EXPECT_EQ(list.gateways(0).name(), "test-gw-1");
}

TEST(RegisterService, ClampsLeaseToConfiguredBounds) {
  register_config config;
  config.min_ttl = 2000ms;
  config.max_ttl = 9000ms;
  auto server = start_register(config);
  auto stub = make_stub(server->port());
  v1::HeartbeatResponse response;

  ASSERT_TRUE(heartbeat(*stub, make_info("short"), 10, &response).ok());
  EXPECT_EQ(response.ttl_ms(), 2000U);
  ASSERT_TRUE(heartbeat(*stub, make_info("long"), 600000, &response).ok());
  EXPECT_EQ(response.ttl_ms(), 9000U);
  ASSERT_TRUE(heartbeat(*stub, make_info("unset"), 0, &response).ok());
  EXPECT_EQ(response.ttl_ms(), 6000U) << "no ttl asked: the default lease";
}

TEST(RegisterService, RejectsHeartbeatWithoutIdentity) {
  auto server = start_register();
  auto stub = make_stub(server->port());
  EXPECT_EQ(heartbeat(*stub, make_info("")).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(heartbeat(*stub, make_info("gw", "")).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(heartbeat(*stub, make_info(std::string(129, 'x'))).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(server->service().lease_count(), 0U);
}

TEST(RegisterService, WithdrawRemovesImmediately) {
  auto server = start_register();
  auto stub = make_stub(server->port());
  ASSERT_TRUE(heartbeat(*stub, make_info("gw-1"), 60000).ok());
  ASSERT_TRUE(heartbeat(*stub, make_info("gw-2"), 60000).ok());
  ASSERT_EQ(list_ids(*stub), (std::vector<std::string>{"gw-1", "gw-2"}));

  ASSERT_TRUE(withdraw(*stub, "gw-1").ok());
  EXPECT_EQ(list_ids(*stub), (std::vector<std::string>{"gw-2"}));
  EXPECT_TRUE(withdraw(*stub, "never-there").ok()) << "withdrawing twice is harmless";
}

TEST(RegisterService, WatchGetsSnapshotThenChangesInOrder) {
  auto server = start_register();
  auto stub = make_stub(server->port());
  ASSERT_TRUE(heartbeat(*stub, make_info("gw-a"), 60000).ok());

  auto [context, reader, snapshot, ok] = open_watch(*stub, "", "test");
  ASSERT_TRUE(ok) << "the first event must be a snapshot";
  ASSERT_EQ(snapshot.gateways_size(), 1);
  EXPECT_EQ(snapshot.gateways(0).gateway_id(), "gw-a");
  v1::WatchEvent event;

  ASSERT_TRUE(heartbeat(*stub, make_info("gw-b"), 60000).ok());
  ASSERT_TRUE(reader->Read(&event));
  ASSERT_TRUE(event.has_added());
  EXPECT_EQ(event.added().gateway_id(), "gw-b");

  // A renewal with the same info says nothing; a changed announcement is a fresh `added`.
  ASSERT_TRUE(heartbeat(*stub, make_info("gw-a"), 60000).ok());
  auto changed = make_info("gw-b");
  changed.add_listeners("tcp+line://127.0.0.1:9000");
  ASSERT_TRUE(heartbeat(*stub, changed, 60000).ok());
  ASSERT_TRUE(reader->Read(&event));
  ASSERT_TRUE(event.has_added());
  EXPECT_EQ(event.added().gateway_id(), "gw-b");
  EXPECT_EQ(event.added().listeners_size(), 2);

  ASSERT_TRUE(withdraw(*stub, "gw-a").ok());
  ASSERT_TRUE(reader->Read(&event));
  ASSERT_TRUE(event.has_removed()) << "the renewal of gw-a must not have produced an event";
  EXPECT_EQ(event.removed().gateway_id(), "gw-a");

  EXPECT_EQ(server->service().watcher_count(), 1U);
  context->TryCancel();
  EXPECT_FALSE(reader->Read(&event));
  EXPECT_TRUE(eventually([&] { return server->service().watcher_count() == 0; }));
}

TEST(RegisterService, LapsedLeaseIsDroppedAndWatchersSeeRemoved) {
  auto server = start_register();
  auto stub = make_stub(server->port());

  auto [context, reader, snapshot, ok] = open_watch(*stub);
  ASSERT_TRUE(ok);
  EXPECT_EQ(snapshot.gateways_size(), 0);
  v1::WatchEvent event;

  ASSERT_TRUE(heartbeat(*stub, make_info("gw-1"), 1000).ok());
  const auto last_heartbeat = std::chrono::steady_clock::now();
  ASSERT_TRUE(reader->Read(&event));
  ASSERT_TRUE(event.has_added());

  ASSERT_TRUE(reader->Read(&event));
  const auto elapsed = std::chrono::steady_clock::now() - last_heartbeat;
  ASSERT_TRUE(event.has_removed());
  EXPECT_EQ(event.removed().gateway_id(), "gw-1");
  EXPECT_GE(elapsed, 950ms) << "dropped before its lease ran out";
  EXPECT_LE(elapsed, 3s) << "a lapsed gateway must go within a few seconds";
  EXPECT_TRUE(list_ids(*stub).empty());
}

TEST(RegisterService, ShutdownEndsWatchStreamsPromptly) {
  auto server = start_register();
  auto stub = make_stub(server->port());
  auto [context, reader, snapshot, ok] = open_watch(*stub);
  ASSERT_TRUE(ok);
  v1::WatchEvent event;

  const auto begin = std::chrono::steady_clock::now();
  server->shutdown(2000ms);
  EXPECT_LT(std::chrono::steady_clock::now() - begin, 1500ms);
  EXPECT_FALSE(reader->Read(&event));
  EXPECT_FALSE(reader->Finish().ok());
}

}  // namespace
}  // namespace gwx::registry::test
