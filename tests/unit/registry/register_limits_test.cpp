// The register under a flood, as the hostile-input review drove it: entries too many, too big
// or too fast from one caller, snapshots past gRPC's 4 MB message limit, and watchers that stop
// reading. Each test reproduces the finding and checks it no longer happens.
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <regex>

#include "common/metrics/registry.hpp"
#include "common/registry/register_rpc.hpp"
#include "register/peer_limiter.hpp"
#include "tests/unit/registry/non_reading_client.hpp"
#include "tests/unit/registry/registry_test_support.hpp"

namespace gwx::registry::test {
namespace {

// An announcement of about `bytes` bytes: many long listener URLs.
v1::GatewayInfo big_info(const std::string& id, std::size_t bytes, char fill = 'x') {
  auto info = make_info(id);
  info.clear_listeners();
  while (info.ByteSizeLong() + 512 < bytes) {
    info.add_listeners("ws://127.0.0.1:8080/" + std::string(480, fill));
  }
  return info;
}

// A register on the IPv6 wildcard (dual-stack), so that callers from 127.0.0.1 and from ::1 are
// two peers. (Every 127.x address connects from 127.0.0.1 on Linux.) Null without IPv6.
std::unique_ptr<register_server> start_dual_stack(register_config config,
                                                  metrics::registry* metrics = nullptr) {
  try {
    auto server = std::make_unique<register_server>(host_port{"::", 0}, std::move(config), metrics);
    auto probe = v1::RegisterService::NewStub(grpc::CreateChannel(
        "[::1]:" + std::to_string(server->port()), grpc::InsecureChannelCredentials()));
    auto context = make_context({}, "List", 2s);
    v1::ListResponse response;
    if (!probe->List(context.get(), v1::ListRequest{}, &response).ok()) {
      return nullptr;
    }
    return server;
  } catch (const std::exception&) {
    return nullptr;
  }
}

// The second address, ::1, as a gRPC target host.
constexpr const char* k_other_host = "[::1]";

std::unique_ptr<v1::RegisterService::Stub> stub_from(const std::string& host, std::uint16_t port) {
  return v1::RegisterService::NewStub(
      grpc::CreateChannel(host + ":" + std::to_string(port), grpc::InsecureChannelCredentials()));
}

// Every gateway_id, following List's pages; `pages` gets how many there were.
std::vector<std::string> list_all(v1::RegisterService::Stub& stub, int* pages) {
  std::vector<std::string> ids;
  v1::ListRequest request;
  *pages = 0;
  do {
    v1::ListResponse response;
    auto context = make_context();
    const auto status = stub.List(context.get(), request, &response);
    EXPECT_TRUE(status.ok()) << describe(status);
    if (!status.ok()) {
      break;
    }
    ++*pages;
    for (const auto& info : response.gateways()) {
      ids.push_back(info.gateway_id());
    }
    request.set_page_token(response.next_page_token());
  } while (!request.page_token().empty());
  return ids;
}

double metric_value(const metrics::registry& metrics, const std::string& series) {
  const auto text = metrics.expose();
  const auto at = text.find("\n" + series + " ");
  if (at == std::string::npos) {
    return -1;
  }
  return std::stod(text.substr(at + series.size() + 2));
}

TEST(RegisterLimits, PeerHostDropsThePort) {
  EXPECT_EQ(peer_host("ipv4:10.0.0.5:41234"), "10.0.0.5");
  EXPECT_EQ(peer_host("ipv6:[::1]:41234"), "::1");
  EXPECT_EQ(peer_host("ipv6:[2001:db8::7]:1"), "2001:db8::7");
  EXPECT_EQ(peer_host("unix:/run/gwx.sock"), "unix:/run/gwx.sock");
}

TEST(RegisterLimits, PeerLimiterAllowsTheBurstThenTheRate) {
  peer_limiter limiter(10, 5);
  const auto t0 = peer_limiter::clock::time_point{} + 1h;
  int allowed = 0;
  for (int i = 0; i < 20; ++i) {
    allowed += limiter.allow("a", t0) ? 1 : 0;
  }
  EXPECT_EQ(allowed, 5) << "the burst, then nothing at the same instant";
  EXPECT_TRUE(limiter.allow("b", t0)) << "another caller has its own bucket";
  EXPECT_FALSE(limiter.allow("a", t0 + 50ms)) << "half a token";
  EXPECT_TRUE(limiter.allow("a", t0 + 100ms));
  EXPECT_FALSE(limiter.allow("a", t0 + 100ms));
  allowed = 0;
  for (int i = 0; i < 20; ++i) {
    allowed += limiter.allow("a", t0 + 10s) ? 1 : 0;
  }
  EXPECT_EQ(allowed, 5) << "refills up to the burst, not beyond";
  peer_limiter off(0, 0);
  for (int i = 0; i < 1000; ++i) {
    ASSERT_TRUE(off.allow("a", t0));
  }
}

TEST(RegisterLimits, PeerLimiterForgetsIdleCallers) {
  peer_limiter limiter(10, 5);
  const auto t0 = peer_limiter::clock::time_point{} + 1h;
  for (int i = 0; i < 5000; ++i) {
    limiter.allow("10.0." + std::to_string(i / 256) + "." + std::to_string(i % 256),
                  t0 + std::chrono::milliseconds(i));
  }
  EXPECT_LT(limiter.tracked(), 2100U) << "callers whose bucket refilled are dropped";
}

// The review: 150 large fake entries pushed the List/Watch snapshot past 4 MB and new workers
// and gwxctl saw nothing. Now the snapshot comes in pieces and List in pages.
TEST(RegisterLimits, SnapshotOfManyMaxSizeEntriesReachesANewWatcher) {
  register_config config;
  config.max_entry_bytes = 32768;
  config.peer_rate = 0;
  config.max_gateways_per_peer = 1000;
  auto server = start_register(config);
  auto stub = make_stub(server->port());
  std::size_t total = 0;
  for (int i = 0; i < 150; ++i) {
    char id[16];
    std::snprintf(id, sizeof id, "gw-%03d", i);
    const auto info = big_info(id, 31000);
    total += info.ByteSizeLong();
    // Leases far longer than the test: under TSan registering all 150 took over a minute.
    ASSERT_TRUE(heartbeat(*stub, info, 600000).ok()) << i;
  }
  ASSERT_GT(total, 4U << 20) << "the set must not fit in one 4 MB message";

  // A raw watcher: a first piece with the total, the rest as `added` events.
  auto watch = open_watch(*stub);
  ASSERT_TRUE(watch.ok);
  EXPECT_EQ(watch.snapshot.total(), 150U);
  EXPECT_LT(watch.snapshot.gateways_size(), 150);
  EXPECT_GT(watch.snapshot.gateways_size(), 0);
  watch.context->TryCancel();

  // A real watcher with gRPC's default limits sees all 150, from its first report on.
  change_recorder changes;
  gateway_watcher watcher({local(server->port())}, {}, "new-worker", changes.handler());
  watcher.start();
  ASSERT_TRUE(watcher.wait_for_snapshot(60s));
  EXPECT_EQ(watcher.current().size(), 150U);
  // The handler runs just after the snapshot is marked seen (outside the watcher's lock).
  ASSERT_TRUE(eventually([&] { return !changes.history().empty(); }));
  EXPECT_EQ(changes.history().front().size(), 150U) << "the pieces are applied as one snapshot";
  watcher.stop();

  int pages = 0;
  const auto ids = list_all(*stub, &pages);
  EXPECT_EQ(ids.size(), 150U);
  EXPECT_EQ(ids.front(), "gw-000");
  EXPECT_EQ(ids.back(), "gw-149");
  EXPECT_GT(pages, 1);
}

TEST(RegisterLimits, EntriesAreCappedInNumberPerCallerAndInSize) {
  metrics::registry metrics;
  register_config config;
  config.max_gateways = 5;
  config.max_gateways_per_peer = 3;
  config.peer_rate = 0;
  auto server = start_dual_stack(config, &metrics);
  if (!server) {
    GTEST_SKIP() << "no IPv6 loopback: cannot call from two addresses";
  }
  auto one = stub_from("127.0.0.1", server->port());
  auto two = stub_from(k_other_host, server->port());

  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(heartbeat(*one, make_info("a" + std::to_string(i)), 60000).ok()) << i;
  }
  EXPECT_EQ(heartbeat(*one, make_info("a3"), 60000).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED)
      << "a fourth gateway from one address";
  EXPECT_TRUE(heartbeat(*one, make_info("a0"), 60000).ok()) << "renewals go on";
  const auto from_two = heartbeat(*two, make_info("b0"), 60000);
  ASSERT_TRUE(from_two.ok()) << describe(from_two);
  ASSERT_TRUE(heartbeat(*two, make_info("b1"), 60000).ok());
  EXPECT_EQ(heartbeat(*two, make_info("b2"), 60000).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED)
      << "the register is full";
  ASSERT_TRUE(withdraw(*one, "a1").ok());
  EXPECT_TRUE(heartbeat(*two, make_info("b2"), 60000).ok()) << "a withdrawn slot is free again";
  EXPECT_EQ(server->service().lease_count(), 5U);

  const auto too_big = big_info("big", config.max_entry_bytes + 1024);
  const auto status = heartbeat(*two, too_big, 60000);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(status.error_message().find("max-entry-bytes"), std::string::npos);
  EXPECT_EQ(metric_value(metrics, "gwx_register_rpc_rejected_total{reason=\"too_many_gateways\"}"),
            2);
  EXPECT_EQ(metric_value(metrics, "gwx_register_rpc_rejected_total{reason=\"entry_too_large\"}"),
            1);
}

// The review: 2,000 Watch streams from one caller cost the register ~72 MB, with no limit. Now
// they are capped in all and per caller address; a closed one frees its place.
TEST(RegisterLimits, WatchersAreCappedInAllAndPerCaller) {
  metrics::registry metrics;
  register_config config;
  config.max_watchers = 3;
  config.max_watchers_per_peer = 2;
  config.peer_rate = 0;
  auto server = start_dual_stack(config, &metrics);
  if (!server) {
    GTEST_SKIP() << "no IPv6 loopback: cannot call from two addresses";
  }
  auto one = stub_from("127.0.0.1", server->port());
  auto two = stub_from(k_other_host, server->port());

  auto a0 = open_watch(*one, {}, "a0");
  auto a1 = open_watch(*one, {}, "a1");
  ASSERT_TRUE(a0.ok && a1.ok);
  auto a2 = open_watch(*one, {}, "a2");
  EXPECT_FALSE(a2.ok) << "a third watcher from one address";
  EXPECT_EQ(a2.reader->Finish().error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  auto b0 = open_watch(*two, {}, "b0");
  ASSERT_TRUE(b0.ok) << "another address has its own share";
  auto b1 = open_watch(*two, {}, "b1");
  EXPECT_FALSE(b1.ok) << "the register is full";
  const auto refused = b1.reader->Finish();
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(refused.error_message().find("--max-watchers"), std::string::npos);
  EXPECT_EQ(server->service().watcher_count(), 3U);

  // a0 goes away: its place is free again.
  a0.context->TryCancel();
  v1::WatchEvent event;
  while (a0.reader->Read(&event)) {
  }
  a0.reader->Finish();
  EXPECT_TRUE(eventually([&] { return server->service().watcher_count() == 2; }));
  auto a3 = open_watch(*one, {}, "a3");
  EXPECT_TRUE(a3.ok);
  EXPECT_EQ(metric_value(metrics, "gwx_register_rpc_rejected_total{reason=\"too_many_watchers\"}"),
            2);
  for (auto* w : {&a1, &b0, &a3}) {
    w->context->TryCancel();
  }
}

// The review: 5,000 fake entries from one caller (here 1,000). Now its flood is refused beyond its
// rate and its share of entries, and a real gateway elsewhere still gets in.
TEST(RegisterLimits, FloodFromOneCallerIsLimitedWhileARealGatewayGetsIn) {
  metrics::registry metrics;
  register_config config;
  config.peer_rate = 5;
  config.peer_burst = 20;
  config.max_gateways_per_peer = 16;
  auto server = start_dual_stack(config, &metrics);
  if (!server) {
    GTEST_SKIP() << "no IPv6 loopback: cannot call from two addresses";
  }
  auto attacker = stub_from("127.0.0.1", server->port());

  const auto begin = std::chrono::steady_clock::now();
  int accepted = 0;
  int limited = 0;
  for (int i = 0; i < 1000; ++i) {
    const auto status = heartbeat(*attacker, make_info("fake-" + std::to_string(i)), 60000);
    accepted += status.ok() ? 1 : 0;
    limited += status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED ? 1 : 0;
  }
  const std::chrono::duration<double> took = std::chrono::steady_clock::now() - begin;
  EXPECT_GT(limited, 0);
  EXPECT_LE(accepted, 20 + 5 * took.count() + 1) << "burst plus rate over " << took.count() << " s";
  EXPECT_EQ(server->service().lease_count(), config.max_gateways_per_peer)
      << "the flood fills its own share, no more";
  EXPECT_GT(metric_value(metrics, "gwx_register_rpc_rejected_total{reason=\"rate_limited\"}"), 0);
  EXPECT_EQ(
      metric_value(metrics, "gwx_register_rpc_rejected_total{reason=\"rate_limited\"}") +
          metric_value(metrics, "gwx_register_rpc_rejected_total{reason=\"too_many_gateways\"}"),
      1000 - accepted);

  // The attacker is still at it (its bucket empty, its share full) when a real gateway joins.
  EXPECT_EQ(heartbeat(*attacker, make_info("fake-more"), 60000).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
  auto real = stub_from(k_other_host, server->port());
  v1::HeartbeatResponse response;
  const auto joined = heartbeat(*real, make_info("gw-real"), 3000, &response);
  EXPECT_TRUE(joined.ok()) << describe(joined);
  EXPECT_TRUE(response.created());
}

// The review: watchers that stop reading buffered up to 65,536 events each (3: 733 MB). Now the
// backlog is bounded in bytes, and a watcher past it is cut.
TEST(RegisterLimits, WatcherThatStopsReadingIsCutAndMemoryStaysBounded) {
  metrics::registry metrics;
  register_config config;
  config.max_entry_bytes = 34000;
  config.max_watch_backlog_bytes = 256 << 10;
  config.peer_rate = 0;
  auto server = std::make_unique<register_server>(host_port{"127.0.0.1", 0}, config, &metrics);
  auto stub = make_stub(server->port());
  auto stuck = open_watch(*stub, {}, "stuck");
  ASSERT_TRUE(stuck.ok);

  // Re-announce one gateway with alternating big payloads: every heartbeat is a change.
  const v1::GatewayInfo variants[] = {big_info("gw-1", 30000, 'a'), big_info("gw-1", 30000, 'b')};
  std::size_t sent = 0;
  std::size_t peak = 0;
  int changes = 0;
  for (int i = 0; i < 4000 && server->service().watch_overflow_count() == 0; ++i) {
    ASSERT_TRUE(heartbeat(*stub, variants[i % 2], 60000).ok());
    sent += variants[i % 2].ByteSizeLong();
    peak = std::max(peak, server->service().watch_backlog_bytes());
    ++changes;
  }
  EXPECT_EQ(server->service().watch_overflow_count(), 1U) << "sent " << sent << " bytes";
  EXPECT_LE(peak, config.max_watch_backlog_bytes);
  EXPECT_EQ(server->service().watch_backlog_bytes(), 0U) << "a cut watcher holds nothing";

  // It reads on: what the transport held, then the end, with the reason.
  v1::WatchEvent event;
  while (stuck.reader->Read(&event)) {
  }
  EXPECT_EQ(stuck.reader->Finish().error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_TRUE(eventually([&] { return server->service().watcher_count() == 0; }));
  // Every change was settled once — written, or dropped with the cut stream's backlog — so
  // each gave one fan-out time, none is left pending.
  EXPECT_TRUE(eventually([&] {
    return metric_value(metrics, "gwx_register_watch_fanout_seconds_count") == changes;
  })) << metric_value(metrics, "gwx_register_watch_fanout_seconds_count")
      << " of " << changes;
  // A change with no watcher left has no fan-out to time.
  ASSERT_TRUE(heartbeat(*stub, make_info("gw-2"), 60000).ok());
  EXPECT_EQ(metric_value(metrics, "gwx_register_watch_fanout_seconds_count"), changes);
}

TEST(RegisterLimits, EveryChangeIsTimedOnceWhenEveryWatcherHasWrittenIt) {
  metrics::registry metrics;
  register_config config;
  config.peer_rate = 0;
  auto server = std::make_unique<register_server>(host_port{"127.0.0.1", 0}, config, &metrics);
  auto stub = make_stub(server->port());
  auto a = open_watch(*stub, {}, "a");
  auto b = open_watch(*stub, {}, "b");
  ASSERT_TRUE(a.ok && b.ok);
  ASSERT_TRUE(eventually([&] { return server->service().watcher_count() == 2; }));
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(heartbeat(*stub, make_info("gw-" + std::to_string(i)), 60000).ok());
  }
  // Both read everything: the snapshot, then three `added`.
  for (auto* w : {&a, &b}) {
    v1::WatchEvent event;
    int added = 0;
    while (added < 3 && w->reader->Read(&event)) {
      added += event.has_added() ? 1 : 0;
    }
    EXPECT_EQ(added, 3);
  }
  EXPECT_TRUE(eventually(
      [&] { return metric_value(metrics, "gwx_register_watch_fanout_seconds_count") == 3; }));
  EXPECT_GE(metric_value(metrics, "gwx_register_watch_fanout_seconds_sum"), 0);
}

// The review: a 4 MB watcher_name was kept in each stream's label and logged on connect and
// disconnect (20 such Watch calls: register RSS 20 -> 208 MB, 160 MB of log), and a name with a
// newline forged a log line. Now a name over 256 bytes is refused and names are logged escaped.
TEST(RegisterLimits, WatcherNameIsBoundedAndCannotForgeALogLine) {
  log_capture logs;
  metrics::registry metrics;
  register_config config;
  config.peer_rate = 0;
  auto server = std::make_unique<register_server>(host_port{"127.0.0.1", 0}, config, &metrics);
  auto stub = make_stub(server->port());

  auto huge = open_watch(*stub, {}, std::string(4'000'000, 'N'));
  EXPECT_FALSE(huge.ok);
  const auto refused = huge.reader->Finish();
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << describe(refused);
  EXPECT_NE(refused.error_message().find("watcher_name longer than 256 bytes"), std::string::npos);
  auto over = open_watch(*stub, {}, std::string(k_max_watcher_name + 1, 'n'));
  EXPECT_FALSE(over.ok);
  EXPECT_EQ(over.reader->Finish().error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(metric_value(metrics, "gwx_register_rpc_rejected_total{reason=\"invalid_argument\"}"),
            2);
  EXPECT_EQ(server->service().watcher_count(), 0U);
  EXPECT_LT(logs.text().size(), 4096U) << "the refused names never reach the log";

  auto longest = open_watch(*stub, {}, std::string(k_max_watcher_name, 'n'));
  EXPECT_TRUE(longest.ok) << "256 bytes is allowed";
  const std::string forged = "w1\n2026-01-01T00:00:00.000 error gwx-register: FORGED\x1b[31m";
  auto sneaky = open_watch(*stub, {}, forged);
  ASSERT_TRUE(sneaky.ok);
  sneaky.context->TryCancel();
  ASSERT_TRUE(eventually([&] {
    return logs.count({"FORGED", "disconnected"}) == 1;
  })) << logs.text();
  // Both lines, on connect and on disconnect, carry the name escaped.
  EXPECT_EQ(logs.count({"watcher w1\\x0a2026-01-01T00:00:00.000 error gwx-register: "
                        "FORGED\\x1b[31m (ipv4:127.0.0.1:",
                        "connected"}),
            2U)
      << logs.text();
  const auto text = logs.text();
  EXPECT_EQ(text.find("\n2026-01-01"), std::string::npos) << "a forged line";
  EXPECT_EQ(text.find('\x1b'), std::string::npos);
  longest.context->TryCancel();
}

// The same for the strings a gateway announces: they are bounded already (an id of at most 128
// bytes, an address of at most 512), but a newline in them forged a log line when the gateway
// registered, changed its announcement, withdrew, or lapsed.
TEST(RegisterLimits, AnnouncedStringsCannotForgeALogLine) {
  log_capture logs;
  register_config config;
  config.peer_rate = 0;
  auto server = start_register(config);
  auto stub = make_stub(server->port());

  auto info =
      make_info("gw\n2026-01-01T00:00:00.000 info gwx-register: FORGED-ID", "127.0.0.1:1\r\x1b[2K");
  ASSERT_TRUE(heartbeat(*stub, info, 60000).ok());
  info.set_internal_address("127.0.0.1:2\nFORGED-ADDRESS");
  ASSERT_TRUE(heartbeat(*stub, info, 60000).ok());
  ASSERT_TRUE(withdraw(*stub, info.gateway_id()).ok());
  ASSERT_TRUE(heartbeat(*stub, make_info("lapses\nFORGED-LAPSE"), 1000).ok());
  ASSERT_TRUE(eventually([&] { return logs.count({"lease lapsed"}) == 1; })) << logs.text();

  const std::string id = "gw\\x0a2026-01-01T00:00:00.000 info gwx-register: FORGED-ID";
  EXPECT_EQ(logs.count({id, "at 127.0.0.1:1\\x0d\\x1b[2K registered by ipv4:127.0.0.1:"}), 1U)
      << logs.text();
  EXPECT_EQ(logs.count({id, "at 127.0.0.1:2\\x0aFORGED-ADDRESS changed"}), 1U) << logs.text();
  EXPECT_EQ(logs.count({id, "withdrawn"}), 1U) << logs.text();
  EXPECT_EQ(logs.count({"gateway lapses\\x0aFORGED-LAPSE dropped: lease lapsed"}), 1U)
      << logs.text();
  const auto text = logs.text();
  EXPECT_EQ(text.find("\nFORGED"), std::string::npos) << "a forged line";
  EXPECT_EQ(text.find("\n2026-01-01"), std::string::npos) << "a forged line";
  EXPECT_EQ(text.find('\r'), std::string::npos);
  EXPECT_EQ(text.find('\x1b'), std::string::npos);
}

// Gateways whose snapshot is far larger than the 64 KiB a register may send before its reader
// opens the flow-control window: a write of it to a watcher that never reads never completes.
void announce_big_set(v1::RegisterService::Stub& stub) {
  for (int i = 0; i < 8; ++i) {
    ASSERT_TRUE(heartbeat(stub, big_info("gw-" + std::to_string(i), 30000), 60000).ok()) << i;
  }
}

// Re-announces "gw-busy" with alternating ~30 KB payloads, every heartbeat a change, until a
// watcher is cut for falling behind (4,000 changes at most); returns the watchers cut.
std::size_t churn_until_a_watcher_is_cut(v1::RegisterService::Stub& stub, register_server& server) {
  const v1::GatewayInfo variants[] = {big_info("gw-busy", 30000, 'a'),
                                      big_info("gw-busy", 30000, 'b')};
  for (int i = 0; i < 4000 && server.service().watch_overflow_count() == 0; ++i) {
    const auto status = heartbeat(stub, variants[i % 2], 60000);
    if (!status.ok()) {
      ADD_FAILURE() << "heartbeat " << i << ": " << describe(status);
      break;
    }
  }
  return server.service().watch_overflow_count();
}

// The review: Watch streams whose client never reads kept about one snapshot each and their
// slot forever (200 of them and an ~850 KB snapshot: register RSS 23 -> 203 MB, for good), since
// their first write never completes. Now a write that makes no progress for
// --watch-write-timeout-s cancels the stream and frees its slot, while a watcher that reads (then
// idles with nothing to write) stays.
TEST(RegisterLimits, WatcherThatNeverReadsIsCancelledAndItsSlotFreed) {
  metrics::registry metrics;
  register_config config;
  config.max_entry_bytes = 34000;
  config.max_watchers_per_peer = 3;
  config.watch_write_timeout = 1s;
  config.peer_rate = 0;
  auto server = std::make_unique<register_server>(host_port{"127.0.0.1", 0}, config, &metrics);
  auto stub = make_stub(server->port());
  announce_big_set(*stub);

  auto reads = open_watch(*stub, {}, "reads");
  ASSERT_TRUE(reads.ok);
  non_reading_client never(server->port());
  never.watch("never-reads-1");
  never.watch("never-reads-2");
  ASSERT_TRUE(eventually([&] { return server->service().watcher_count() == 3; }));
  auto refused = open_watch(*stub, {}, "refused");
  EXPECT_FALSE(refused.ok) << "every slot is taken";
  EXPECT_EQ(refused.reader->Finish().error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);

  EXPECT_TRUE(eventually([&] { return server->service().watcher_count() == 1; }, 10s))
      << server->service().watcher_count() << " watchers";
  EXPECT_TRUE(eventually([&] { return never.streams_ended() == 2; }));
  EXPECT_LE(never.data_bytes(), 65535U) << "what the initial window let through";
  // Counted just after the cancel, which may free the slot first.
  EXPECT_TRUE(eventually([&] { return server->service().watch_overflow_count() == 2; }));
  EXPECT_EQ(metric_value(metrics, "gwx_register_watch_overflows_total"), 2);

  // Their slots are free again; the watcher that read its snapshot was never cut.
  auto next = open_watch(*stub, {}, "next");
  EXPECT_TRUE(next.ok);
  EXPECT_EQ(next.snapshot.total(), 8U);
  EXPECT_EQ(server->service().watcher_count(), 2U);
  for (auto* w : {&reads, &next}) {
    w->context->TryCancel();
  }
}

// The same watcher cut for falling behind (its backlog full) while its write was stuck: the
// review saw gwx_register_watch_overflows_total 200 and still 201 watchers, since the end waited
// for that write. Now it gets a second to complete, then the stream is cancelled.
TEST(RegisterLimits, WatcherCutForFallingBehindGivesItsSlotBackThoughItNeverReads) {
  register_config config;
  config.max_entry_bytes = 34000;
  config.max_watch_backlog_bytes = 64 << 10;
  config.max_watchers_per_peer = 1;
  config.peer_rate = 0;
  auto server = start_register(config);
  auto stub = make_stub(server->port());
  announce_big_set(*stub);

  non_reading_client never(server->port());
  never.watch("never-reads");
  ASSERT_TRUE(eventually([&] { return server->service().watcher_count() == 1; }));
  ASSERT_EQ(churn_until_a_watcher_is_cut(*stub, *server), 1U);

  EXPECT_TRUE(eventually([&] { return server->service().watcher_count() == 0; }))
      << "the cut stream still holds its slot";
  EXPECT_TRUE(eventually([&] { return never.streams_ended() == 1; }));
  auto next = open_watch(*stub, {}, "next");
  EXPECT_TRUE(next.ok) << "its slot is free again";
  EXPECT_EQ(next.snapshot.total(), 9U);
  next.context->TryCancel();
}

// A worker whose watcher stalls (its handler blocks) is cut, then resyncs from a fresh snapshot
// and ends up with exactly the register's set.
TEST(RegisterLimits, StalledGatewayWatcherResyncsFromASnapshot) {
  log_capture logs;
  register_config config;
  config.max_entry_bytes = 34000;
  config.max_watch_backlog_bytes = 128 << 10;
  config.peer_rate = 0;
  auto server = start_register(config);
  auto stub = make_stub(server->port());
  ASSERT_TRUE(heartbeat(*stub, make_info("gw-stays"), 60000).ok());

  std::mutex mutex;
  std::condition_variable released;
  bool stall = true;
  gateway_watcher watcher({local(server->port())}, {}, "slow-worker",
                          [&](const std::vector<gateway_entry>&) {
                            std::unique_lock lock(mutex);
                            released.wait(lock, [&] { return !stall; });
                          });
  watcher.start();
  ASSERT_TRUE(eventually([&] { return server->service().watcher_count() == 1; }));

  ASSERT_EQ(churn_until_a_watcher_is_cut(*stub, *server), 1U);
  ASSERT_TRUE(withdraw(*stub, "gw-busy").ok());
  ASSERT_TRUE(heartbeat(*stub, make_info("gw-new"), 60000).ok());
  {
    std::lock_guard lock(mutex);
    stall = false;
  }
  released.notify_all();

  EXPECT_TRUE(eventually(
      [&] {
        return ids_of(watcher.current()) == std::vector<std::string>{"gw-new", "gw-stays"};
      },
      20s))
      << logs.text();
  EXPECT_GE(logs.count({"slow-worker", "fell behind"}), 1U) << logs.text();
  watcher.stop();
}

}  // namespace
}  // namespace gwx::registry::test
