// The cluster core against fake gateways on 127.0.0.1:0: the handshake (both proofs), routing
// by client_id (a stale epoch reaches nobody), query fan-out with a silent and an unreachable
// gateway, link loss, the set of gateways changing, and batching through outbox_scope.
#include "common/cluster/cluster_core.hpp"

#include <gtest/gtest.h>

#include <future>

#include "common/cluster/gateway_api.hpp"
#include "tests/unit/cluster/fake_gateway.hpp"

namespace gwx::cluster {
namespace {

using namespace std::chrono_literals;
using namespace std::string_literals;
using fakes::fake_gateway;

constexpr const char* k_secret = "s3cret";

core_options test_options(std::string secret = k_secret,
                          link::v2::PeerRole role = link::v2::PEER_ROLE_WORKER) {
  core_options o;
  o.link.secret = std::move(secret);
  o.link.name = "tester";
  o.link.role = role;
  o.link.backoff_initial = 10ms;
  o.link.backoff_max = 100ms;
  o.link.keepalive_interval = 200ms;
  o.link.keepalive_timeout = 5s;
  o.query_timeout = 2s;
  return o;
}

// Records the core's link hook calls.
struct link_log {
  std::mutex mutex;
  std::condition_variable changed;
  std::vector<std::pair<std::string, bool>> changes;

  void attach(cluster_core& core) {
    core.set_link_change_handler([this](const std::string& address, bool up) {
      std::lock_guard lock(mutex);
      changes.emplace_back(address, up);
      changed.notify_all();
    });
  }
  int count(const std::string& address, bool up) {
    std::lock_guard lock(mutex);
    return static_cast<int>(
        std::count(changes.begin(), changes.end(), std::make_pair(address, up)));
  }
  bool wait(const std::string& address, bool up, int n = 1) {
    std::unique_lock lock(mutex);
    return changed.wait_for(lock, 10s, [&] {
      return std::count(changes.begin(), changes.end(), std::make_pair(address, up)) >= n;
    });
  }
};

/// A started core linking to `gateway` with this keepalive, its link changes in `links`.
std::shared_ptr<cluster_core> core_with_keepalive(fake_gateway& gateway, link_log& links,
                                                  std::chrono::milliseconds interval,
                                                  std::chrono::milliseconds timeout) {
  auto o = test_options();
  o.link.keepalive_interval = interval;
  o.link.keepalive_timeout = timeout;
  auto core = std::make_shared<cluster_core>(o);
  links.attach(*core);
  core->start();
  core->set_gateways({gateway.entry()});
  return core;
}

link::v2::QueryResult count_result(std::uint64_t n) {
  link::v2::QueryResult r;
  r.set_count(n);
  return r;
}

/// A frozen gateway (it takes nothing, as under SIGSTOP) and a core linked to it before it froze,
/// with a keepalive that does not run out meanwhile.
struct frozen_gateway_setup {
  fake_gateway gateway{k_secret};
  link_log links;
  std::shared_ptr<cluster_core> core;

  /// False when the link did not come up.
  bool start() {
    gateway.set_answer([](const link::v2::Query&) { return count_result(0); });
    core = core_with_keepalive(gateway, links, 1s, 120s);
    if (!core->wait_ready(10s)) {
      return false;
    }
    gateway.freeze();
    return true;
  }
};

/// A started core with default test options, told about `gateways` (wait_ready() follows).
std::shared_ptr<cluster_core> started_core(std::vector<registry::gateway_entry> gateways) {
  auto core = std::make_shared<cluster_core>(test_options());
  core->start();
  core->set_gateways(std::move(gateways));
  return core;
}

// Most bytes a capped_core() queues towards a gateway before it cuts the link.
constexpr std::size_t k_small_cap = 64 * 1024;

/// A started core whose links are cut past k_small_cap queued bytes, its link hook recorded by
/// `links`, told about `gateways`.
std::shared_ptr<cluster_core> capped_core(std::vector<registry::gateway_entry> gateways,
                                          link_log& links) {
  auto o = test_options();
  o.link.send_cap = k_small_cap;
  auto core = std::make_shared<cluster_core>(o);
  links.attach(*core);
  core->start();
  core->set_gateways(std::move(gateways));
  return core;
}

std::vector<std::string> texts_sent(const std::vector<link::v2::Command>& cmds) {
  std::vector<std::string> out;
  for (const auto& c : cmds) {
    if (c.has_send_to_clients()) {
      out.push_back(c.send_to_clients().message().data());
    }
  }
  return out;
}

TEST(ClusterCoreTest, HandshakeLinksWithRoleAndName) {
  fake_gateway gw(k_secret);
  auto core = std::make_shared<cluster_core>(test_options(k_secret, link::v2::PEER_ROLE_CLIENT));
  link_log links;
  links.attach(*core);
  core->start();
  core->set_gateways({gw.entry()});
  ASSERT_TRUE(core->wait_ready(10s));
  ASSERT_TRUE(links.wait(gw.address(), true));
  ASSERT_TRUE(gw.wait([](auto& g) { return g.authenticated == 1; }));
  gw.wait([](auto& g) {
    EXPECT_EQ(g.hello_frames.at(0).role(), link::v2::PEER_ROLE_CLIENT);
    EXPECT_EQ(g.hello_frames.at(0).name(), "tester");
    EXPECT_EQ(g.hello_frames.at(0).nonce().size(), 16U);
    return true;
  });
  const auto status = core->gateways();
  ASSERT_EQ(status.size(), 1U);
  EXPECT_TRUE(status[0].linked);
  EXPECT_EQ(status[0].internal_address, gw.address());
  core->stop();
  EXPECT_TRUE(gw.wait([](auto& g) { return g.closed == 1; }));
}

TEST(ClusterCoreTest, WrongSecretIsRefusedAndRetriedWithBackoff) {
  fake_gateway gw("the-right-one");
  auto core = std::make_shared<cluster_core>(test_options("a-wrong-one"));
  link_log links;
  links.attach(*core);
  core->start();
  core->set_gateways({gw.entry()});
  // Refused, then tried again: the peer keeps reconnecting while the gateway is listed.
  ASSERT_TRUE(gw.wait([](auto& g) { return g.hellos >= 3 && g.closed >= 3; }));
  gw.wait([](auto& g) {
    EXPECT_EQ(g.authenticated, 0);
    return true;
  });
  EXPECT_EQ(links.count(gw.address(), true), 0);
  EXPECT_FALSE(core->gateways().at(0).linked);
  EXPECT_FALSE(core->wait_ready(50ms));
  core->stop();
}

TEST(ClusterCoreTest, GatewayWithAForgedProofIsDropped) {
  fake_gateway gw(k_secret, new_epoch(), fake_gateway::behaviour::forge_welcome);
  auto core = std::make_shared<cluster_core>(test_options());
  link_log links;
  links.attach(*core);
  core->start();
  core->set_gateways({gw.entry()});
  // The fake accepted us, but we must not accept it: we hang up and retry.
  ASSERT_TRUE(gw.wait([](auto& g) { return g.authenticated >= 2 && g.closed >= 2; }));
  gateway_api api(core);
  api.send_to_all("must not arrive");
  ASSERT_TRUE(gw.wait([](auto& g) { return g.closed >= 3; }));
  EXPECT_EQ(links.count(gw.address(), true), 0);
  EXPECT_TRUE(gw.commands_copy().empty());
  core->stop();
}

TEST(ClusterCoreTest, GatewayWithAnotherIdAtTheAddressIsNotLinked) {
  fake_gateway gw(k_secret);
  auto entry = gw.entry();
  entry.gateway_id = epoch_to_hex(12345);  // what the registers said, but another process answers
  auto core = std::make_shared<cluster_core>(test_options());
  link_log links;
  links.attach(*core);
  core->start();
  core->set_gateways({entry});
  ASSERT_TRUE(gw.wait([](auto& g) { return g.closed >= 2; }));
  gw.wait([](auto& g) {
    EXPECT_EQ(g.hellos, 0);  // the challenge's gateway_id already gives it away
    return true;
  });
  EXPECT_EQ(links.count(gw.address(), true), 0);
  core->stop();
}

TEST(ClusterCoreTest, RoutesByClientIdAndAStaleEpochReachesNobody) {
  fake_gateway a(k_secret);
  fake_gateway b(k_secret);
  a.set_answer([](const link::v2::Query&) { return count_result(1); });
  b.set_answer([](const link::v2::Query&) { return count_result(1); });
  auto core = started_core({a.entry(), b.entry()});
  ASSERT_TRUE(core->wait_ready(10s));
  gateway_api api(core);

  const auto stale = a.client_id(7, 0x1234);  // same address as a, earlier epoch
  api.send_to_client(a.client_id(7), "to-a");
  api.send_to_client(b.client_id(9), "to-b");
  api.send_to_client(stale, "stale");
  api.send_to_client("not-a-client-id", "garbage");
  api.join_group(stale, "g");
  const auto online = api.is_online(stale);
  EXPECT_FALSE(online.error);
  EXPECT_FALSE(online.value);
  EXPECT_TRUE(online.missing_gateways.empty());  // nobody to ask, and nobody missing
  // A query is answered after every earlier command on that link: a barrier.
  ASSERT_EQ(api.get_all_client_count().value, 2U);

  const auto on_a = a.commands_copy();
  const auto on_b = b.commands_copy();
  EXPECT_EQ(texts_sent(on_a), std::vector<std::string>{"to-a"});
  EXPECT_EQ(texts_sent(on_b), std::vector<std::string>{"to-b"});
  EXPECT_EQ(on_a.at(0).send_to_clients().client_ids(0), a.client_id(7));
  for (const auto& c : on_a) {
    EXPECT_FALSE(c.has_join_group());
    EXPECT_FALSE(c.has_query() && c.query().kind() == link::v2::QUERY_KIND_IS_ONLINE);
  }
  core->stop();
}

TEST(ClusterCoreTest, QueryMergesAnswersAndReportsSilentAndUnlinkedGateways) {
  fake_gateway a(k_secret);
  fake_gateway silent(k_secret);
  a.set_answer([](const link::v2::Query&) { return count_result(3); });
  silent.set_answer([](const link::v2::Query&) { return std::nullopt; });
  // Listed by the registers but nothing listens there.
  const registry::gateway_entry unreachable{epoch_to_hex(99), "127.0.0.1:1", {}, "gone"};
  auto core = std::make_shared<cluster_core>(test_options());
  link_log links;
  links.attach(*core);
  core->start();
  core->set_gateways({a.entry(), silent.entry(), unreachable});
  ASSERT_TRUE(links.wait(a.address(), true));
  ASSERT_TRUE(links.wait(silent.address(), true));
  gateway_api api(core);

  const auto started = std::chrono::steady_clock::now();
  const auto r = api.get_all_client_count(300ms);
  const auto took = std::chrono::steady_clock::now() - started;
  EXPECT_FALSE(r.error);
  EXPECT_EQ(r.value, 3U);
  std::vector<std::string> missing{silent.address(), "127.0.0.1:1"};
  std::sort(missing.begin(), missing.end());
  EXPECT_EQ(r.missing_gateways, missing);
  EXPECT_FALSE(r.complete());
  EXPECT_GE(took, 300ms);
  EXPECT_LT(took, 3s);  // ended by its own timeout, not by the silent gateway
  // The silent gateway was asked all the same.
  EXPECT_TRUE(silent.wait([](auto& g) { return !g.commands.empty(); }));
  core->stop();
}

TEST(ClusterCoreTest, LosingALinkEndsItsPendingQueriesAtOnce) {
  fake_gateway a(k_secret);
  fake_gateway b(k_secret);
  a.set_answer([](const link::v2::Query&) { return count_result(5); });
  b.set_answer([](const link::v2::Query&) { return std::nullopt; });
  auto core = std::make_shared<cluster_core>(test_options());
  link_log links;
  links.attach(*core);
  core->start();
  core->set_gateways({a.entry(), b.entry()});
  ASSERT_TRUE(core->wait_ready(10s));
  gateway_api api(core);

  std::promise<result<std::uint64_t>> done;
  api.async_get_all_client_count([&done](result<std::uint64_t> r) { done.set_value(std::move(r)); },
                                 60s);
  ASSERT_TRUE(b.wait([](auto& g) { return !g.commands.empty(); }));
  b.drop_links();
  auto future = done.get_future();
  ASSERT_EQ(future.wait_for(10s), std::future_status::ready);
  const auto r = future.get();
  EXPECT_EQ(r.value, 5U);
  EXPECT_EQ(r.missing_gateways, std::vector<std::string>{b.address()});
  ASSERT_TRUE(links.wait(b.address(), false));
  // Still listed, so the link comes back.
  ASSERT_TRUE(links.wait(b.address(), true, 2));
  core->stop();
}

// Handlers may run on the network thread (a worker's default): a blocking query there keeps
// the loop running under it until the answer arrives.
TEST(ClusterCoreTest, BlockingQueryOnTheNetworkThreadIsAnswered) {
  fake_gateway a(k_secret);
  a.set_answer([](const link::v2::Query&) { return count_result(1); });
  auto core = started_core({a.entry()});
  ASSERT_TRUE(core->wait_ready(10s));
  gateway_api api(core);
  std::promise<result<std::uint64_t>> inner;
  api.async_get_all_client_count([&](result<std::uint64_t>) {
    EXPECT_TRUE(core->on_network_thread());
    inner.set_value(api.get_all_client_count());  // on the network thread
  });
  auto f = inner.get_future();
  ASSERT_EQ(f.wait_for(10s), std::future_status::ready);
  const auto r = f.get();
  EXPECT_FALSE(r.error) << r.error.message();
  EXPECT_EQ(r.value, 1U);
  core->stop();
  EXPECT_EQ(api.get_all_client_count().error, api_errc::stopped);
}

TEST(ClusterCoreTest, LinkedGatewayLeavingTheSetKeepsItsLinkUntilItClosesThenIsNotRetried) {
  fake_gateway a(k_secret);
  a.set_answer([](const link::v2::Query&) { return count_result(3); });
  auto core = std::make_shared<cluster_core>(test_options());
  link_log links;
  links.attach(*core);
  gateway_api api(core);
  core->start();
  core->set_gateways({a.entry()});
  ASSERT_TRUE(links.wait(a.address(), true));
  // The registers stop listing it (its lease lapsed while a register was cut off): the link is
  // the truth, it stays and keeps answering.
  core->set_gateways({});
  const auto r = api.get_all_client_count();
  EXPECT_FALSE(r.error) << r.error.message();
  EXPECT_EQ(r.value, 3U);
  EXPECT_EQ(links.count(a.address(), false), 0);
  ASSERT_EQ(core->gateways().size(), 1U);
  EXPECT_TRUE(core->gateways()[0].linked);
  // Once the link goes down it is dropped, not retried.
  a.drop_links();
  ASSERT_TRUE(links.wait(a.address(), false));
  EXPECT_TRUE(core->gateways().empty());
  EXPECT_TRUE(core->wait_ready(1s));  // nothing listed: nothing to wait for
  core->stop();
  a.wait([](auto& g) {
    EXPECT_EQ(g.hellos, 1);
    return true;
  });
}

// A send past a link's cap cuts that link from inside the send (the gateway stopped reading).
// Gateways the registers no longer list are then dropped, while a send to all of them is still
// walking the links: every one must still be tried, and each dropped once, not retried.
TEST(ClusterCoreTest, SendToAllThatCutsUnlistedLinksReachesEveryLinkAndDropsEach) {
  fake_gateway a(k_secret);
  fake_gateway b(k_secret);
  link_log links;
  auto core = capped_core({a.entry(), b.entry()}, links);
  ASSERT_TRUE(core->wait_ready(10s));
  core->set_gateways({});  // leases lapsed: both links stay, unlisted
  gateway_api api(core);
  api.send_to_all(message(std::string(2 * k_small_cap, 'x')));  // past the cap of each link
  ASSERT_TRUE(links.wait(a.address(), false));
  ASSERT_TRUE(links.wait(b.address(), false));
  EXPECT_TRUE(core->gateways().empty());
  EXPECT_TRUE(core->wait_ready(1s));
  core->stop();
  EXPECT_EQ(links.count(a.address(), false), 1);
  EXPECT_EQ(links.count(b.address(), false), 1);
  for (auto* g : {&a, &b}) {
    g->wait([](auto& gw) {
      EXPECT_EQ(gw.hellos, 1);  // not relinked
      return true;
    });
  }
}

// A query whose own send cuts the link gets no answer from that gateway: it says so at once
// instead of waiting for its timeout.
TEST(ClusterCoreTest, QueryWhoseSendCutsTheLinkReportsTheGatewayMissingAtOnce) {
  fake_gateway a(k_secret);
  link_log links;
  auto core = capped_core({a.entry()}, links);
  ASSERT_TRUE(core->wait_ready(10s));
  gateway_api api(core);
  auto done = std::make_shared<std::promise<result<std::map<std::string, std::uint64_t>>>>();
  auto future = done->get_future();
  api.async_get_client_count_by_groups(
      {std::string(2 * k_small_cap, 'g')},
      [done](result<std::map<std::string, std::uint64_t>> r) { done->set_value(std::move(r)); },
      60s);
  ASSERT_EQ(future.wait_for(10s), std::future_status::ready);
  EXPECT_EQ(future.get().missing_gateways, std::vector<std::string>{a.address()});
  ASSERT_TRUE(links.wait(a.address(), false));
  ASSERT_TRUE(links.wait(a.address(), true, 2));  // still listed: relinked
  core->stop();
}

// A query too large for one link frame is not sent (the gateway would cut the link on it): it
// says at once that the gateway did not answer, and the link stays up for the next query.
TEST(ClusterCoreTest, QueryOverTheFrameLimitReportsTheGatewayMissingAtOnceAndTheLinkStays) {
  fake_gateway a(k_secret);
  a.set_answer([](const link::v2::Query&) { return count_result(3); });
  link_log links;
  auto o = test_options();
  o.link.max_frame = 1 << 20;
  auto core = std::make_shared<cluster_core>(o);
  links.attach(*core);
  core->start();
  core->set_gateways({a.entry()});
  ASSERT_TRUE(core->wait_ready(10s));
  gateway_api api(core);
  const auto started = std::chrono::steady_clock::now();
  const auto r = api.get_client_count_by_groups({std::string(1 << 20, 'g')}, 60s);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 5s) << "not ended by its timeout";
  EXPECT_EQ(r.missing_gateways, std::vector<std::string>{a.address()});
  const auto next = api.get_all_client_count(10s);
  EXPECT_TRUE(next.complete());
  EXPECT_EQ(next.value, 3U);
  EXPECT_EQ(links.count(a.address(), false), 0) << "the link went down";
  core->stop();
}

TEST(ClusterCoreTest, ListedAgainBeforeItsLinkClosesTheGatewayIsRelinked) {
  fake_gateway a(k_secret);
  auto core = std::make_shared<cluster_core>(test_options());
  link_log links;
  links.attach(*core);
  core->start();
  core->set_gateways({a.entry()});
  ASSERT_TRUE(links.wait(a.address(), true));
  core->set_gateways({});
  core->set_gateways({a.entry()});
  a.drop_links();
  ASSERT_TRUE(links.wait(a.address(), false));
  ASSERT_TRUE(links.wait(a.address(), true, 2));  // listed: reconnected
  core->stop();
}

TEST(ClusterCoreTest, UnlinkedGatewayLeavingTheSetIsNotRetried) {
  fake_gateway a(k_secret);
  auto core = std::make_shared<cluster_core>(test_options("wrong secret"));
  core->start();
  core->set_gateways({a.entry()});
  ASSERT_TRUE(a.wait([](auto& g) { return g.hellos >= 1; }));
  core->set_gateways({});
  ASSERT_TRUE(core->wait_ready(2s));
  EXPECT_TRUE(core->gateways().empty());
  core->stop();
}

// A push loop against a gateway that takes nothing (frozen, as SIGSTOP would; its keepalive
// not yet due): pushes past the link's push backlog are dropped and counted, the link is not cut
// as "not reading" and the caller is held to the network thread's pace. Before, ~300 MB of
// pushes filled the link's 256 MiB queue and cut the link, and the process grew with them.
TEST(ClusterCoreTest, PushesToAGatewayThatTakesNothingAreDroppedPastTheBacklogNotCuttingTheLink) {
  frozen_gateway_setup setup;
  ASSERT_TRUE(setup.start());
  auto& a = setup.gateway;
  auto& links = setup.links;
  auto& core = setup.core;
  gateway_api api(core);
  const std::string kib(1024, 'p');
  for (int i = 0; i < 300'000; ++i) {  // ~300 MB
    api.send_to_all(kib);
  }
  // Everything handed over before it has been delivered or dropped when this runs.
  std::promise<void> handled;
  core->post([&handled] { handled.set_value(); });
  ASSERT_EQ(handled.get_future().wait_for(60s), std::future_status::ready);
  EXPECT_GT(core->pushes_dropped(), 100'000U);
  EXPECT_EQ(links.count(a.address(), false), 0);
  a.thaw();
  // Every push not dropped arrives, on the same link, which then answers a query.
  const auto kept = 300'000U - core->pushes_dropped();
  EXPECT_TRUE(a.wait([kept](auto& g) { return g.commands.size() >= kept; }, 120s));
  EXPECT_EQ(a.commands_copy().size(), kept);
  EXPECT_TRUE(api.get_all_client_count().complete());
  EXPECT_EQ(links.count(a.address(), false), 0);
  core->stop();
}

// Writes made before start() cannot be delivered yet: past the core's posted-bytes bound they
// are dropped and counted as pushes (and a query past it fails as not started), instead of
// queueing without a bound until start(). Before, 100 MB of pushes were all kept.
TEST(ClusterCoreTest, WritesBeforeStartAreDroppedPastThePostedBound) {
  fake_gateway a(k_secret);
  a.set_answer([](const link::v2::Query&) { return count_result(7); });
  auto core = std::make_shared<cluster_core>(test_options());
  gateway_api api(core);
  const std::string kib(1024, 'p');
  constexpr int k_pushes = 100'000;  // ~100 MB against a 64 MiB bound
  for (int i = 0; i < k_pushes; ++i) {
    api.send_to_all(kib);
  }
  EXPECT_GT(core->pushes_dropped(), 30'000U);
  EXPECT_LT(core->pushes_dropped(), static_cast<std::uint64_t>(k_pushes));
  // Queries made now fill what room is left, then fail as not started (at once).
  std::atomic<int> refused{0};
  std::atomic<int> answered{0};
  for (int i = 0; i < 1000; ++i) {
    api.async_get_all_client_count([&](result<std::uint64_t> r) {
      (r.error == api_errc::stopped ? refused : answered).fetch_add(1);
    });
  }
  EXPECT_GT(refused.load(), 0);
  EXPECT_EQ(answered.load(), 0);
  // Once started, the core works as usual, the queries it kept are answered.
  core->start();
  core->set_gateways({a.entry()});
  ASSERT_TRUE(core->wait_ready(10s));
  const auto count = api.get_all_client_count();
  ASSERT_TRUE(count.complete());
  EXPECT_EQ(count.value, 7U);
  core->stop();
}

// Queries made by another thread while the network thread is busy are held to the posted-bytes
// bound as pushes are: the asking thread waits there instead of queueing without one. Before,
// all 400,000 were queued at once.
TEST(ClusterCoreTest, QueriesFromAnotherThreadWaitAtThePostedBound) {
  auto core = std::make_shared<cluster_core>(test_options());
  core->start();
  gateway_api api(core);
  std::promise<void> release;
  auto released = release.get_future().share();
  core->post([released] { released.wait(); });  // the network thread busy until released
  constexpr int k_queries = 400'000;            // ~100 MB counted against a 64 MiB bound
  std::atomic<int> made{0};
  std::atomic<int> answered{0};
  std::thread asker([&] {
    for (int i = 0; i < k_queries; ++i) {
      api.async_get_all_client_count([&](result<std::uint64_t> r) {
        if (r.complete()) {
          answered.fetch_add(1);
        }
      });
      made.fetch_add(1);
    }
  });
  // The asker gets as far as the bound (a query counts 256 bytes there) and waits.
  const int bound = static_cast<int>(cluster_core::k_max_posted_bytes / 256);
  for (int i = 0; i < 1200 && made.load() < bound; ++i) {
    std::this_thread::sleep_for(50ms);
  }
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(made.load(), bound);
  EXPECT_EQ(answered.load(), 0);
  release.set_value();
  asker.join();
  // Every query is answered once the network thread runs again (no gateway: complete, 0).
  for (int i = 0; i < 1200 && answered.load() < k_queries; ++i) {
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_EQ(answered.load(), k_queries);
  core->stop();
}

// Everything one handler call writes is bounded while the call runs, on a handler thread and on
// the network thread (inline handlers): its outbox hands over what it holds every
// k_outbox_flush_bytes, so the writes meet the posted-bytes wait and the link's push backlog as
// they are made. Before, one scope kept all 200 MB until it ended and nothing was dropped yet.
TEST(ClusterCoreTest, OneHandlerCallsWritesAreBoundedBeforeItReturns) {
  for (const bool network_thread : {false, true}) {
    SCOPED_TRACE(network_thread ? "network thread" : "handler thread");
    frozen_gateway_setup setup;
    ASSERT_TRUE(setup.start());
    auto& a = setup.gateway;
    auto& core = setup.core;
    gateway_api api(core);
    std::promise<std::uint64_t> dropped_inside;
    auto handler_call = [&] {
      outbox_scope outbox(*core);
      const std::string kib(1024, 'p');
      for (int i = 0; i < 200'000; ++i) {  // ~200 MB, half to one client, half to all
        if (i % 2 == 0) {
          api.send_to_client(a.client_id(1), kib);
        } else {
          api.send_to_all(kib);
        }
      }
      if (!network_thread) {
        // What was handed over has been delivered or dropped when this runs.
        std::promise<void> handled;
        core->post([&handled] { handled.set_value(); });
        handled.get_future().wait();
      }
      dropped_inside.set_value(core->pushes_dropped());
    };
    std::thread caller;
    if (network_thread) {
      core->post(handler_call);
    } else {
      caller = std::thread(handler_call);
    }
    auto f = dropped_inside.get_future();
    ASSERT_EQ(f.wait_for(120s), std::future_status::ready);
    EXPECT_GT(f.get(), 50'000U);
    if (caller.joinable()) {
      caller.join();
    }
    EXPECT_EQ(setup.links.count(a.address(), false), 0);
    a.thaw();
    core->stop();
  }
}

// stop() from one of the core's own callbacks does all it can and returns; the next stop() from
// another thread joins. Before, it waited 3 s for itself, threw EDEADLK from the join, and the
// destructor then aborted the process.
TEST(ClusterCoreTest, StopFromItsOwnCallbackReturnsAndTheNextStopJoins) {
  fake_gateway a(k_secret);
  a.set_answer([](const link::v2::Query&) { return count_result(0); });
  auto core = started_core({a.entry()});
  ASSERT_TRUE(core->wait_ready(10s));
  gateway_api api(core);
  std::promise<bool> stopped_inside;
  const auto start = std::chrono::steady_clock::now();
  api.async_get_all_client_count([&core, &stopped_inside](result<std::uint64_t>) {
    try {
      core->stop();
      stopped_inside.set_value(true);
    } catch (const std::exception&) {
      stopped_inside.set_value(false);
    }
  });
  auto inside = stopped_inside.get_future();
  ASSERT_EQ(inside.wait_for(10s), std::future_status::ready);
  EXPECT_TRUE(inside.get());
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);  // not the 3 s wait for itself
  EXPECT_TRUE(core->stopped());
  core->stop();  // joins the network thread
  EXPECT_EQ(api.get_all_client_count().error, api_errc::stopped);
}

TEST(ClusterCoreTest, WritesOfOneThreadKeepTheirOrder) {
  fake_gateway a(k_secret);
  a.set_answer([](const link::v2::Query&) { return count_result(0); });
  auto core = started_core({a.entry()});
  ASSERT_TRUE(core->wait_ready(10s));
  gateway_api api(core);
  std::vector<std::string> expected;
  // Enough frames (~150 KB) that the gateway's reads come back full and split frames.
  for (int i = 0; i < 5000; ++i) {
    expected.push_back("m" + std::to_string(i));
    api.send_to_client(a.client_id(1), expected.back());
  }
  ASSERT_TRUE(api.get_all_client_count().complete());
  EXPECT_EQ(texts_sent(a.commands_copy()), expected);
  core->stop();
}

// A message the caller keeps (a handler echoing the one it got) goes out by reference, from a
// handler's outbox and from anywhere else, and is still the caller's afterwards.
TEST(ClusterCoreTest, KeptMessageIsSentIntactAndLeftToTheCaller) {
  fake_gateway a(k_secret);
  a.set_answer([](const link::v2::Query&) { return count_result(0); });
  auto core = started_core({a.entry()});
  ASSERT_TRUE(core->wait_ready(10s));
  gateway_api api(core);
  const std::string bytes = "kept \0 message, longer than any small-string buffer"s;
  const message kept = message::bytes(bytes);
  {
    outbox_scope outbox(*core);
    api.send_to_client(a.client_id(1), kept);
    api.send_to_client(a.client_id(1), kept);
  }
  api.send_to_client(a.client_id(1), kept);
  EXPECT_EQ(kept.data, bytes);
  EXPECT_TRUE(kept.binary);
  ASSERT_TRUE(api.get_all_client_count().complete());
  const auto cmds = a.commands_copy();
  EXPECT_EQ(texts_sent(cmds), (std::vector<std::string>{bytes, bytes, bytes}));
  for (const auto& c : cmds) {
    if (c.has_send_to_clients()) {
      EXPECT_TRUE(c.send_to_clients().message().binary());
      EXPECT_EQ(c.send_to_clients().client_ids(0), a.client_id(1));
    }
  }
  core->stop();
}

TEST(ClusterCoreTest, OutboxScopeSendsCommandsThenOneAckFramePerLink) {
  fake_gateway a(k_secret);
  a.set_answer([](const link::v2::Query&) { return count_result(0); });
  auto core = std::make_shared<cluster_core>(test_options());
  std::promise<link_ref> got_event;
  core->set_event_handler(
      [&got_event](const link_ref& link, link::v2::ClientEvent&, std::string_view,
                   const link_clients::client_view*) { got_event.set_value(link); });
  core->start();
  core->set_gateways({a.entry()});
  ASSERT_TRUE(core->wait_ready(10s));
  link::v2::ClientEvent ev;
  ev.set_event_id(1);
  ev.set_kind(link::v2::EVENT_KIND_MESSAGE);
  a.send_event(ev);
  auto f = got_event.get_future();
  ASSERT_EQ(f.wait_for(10s), std::future_status::ready);
  const auto link = f.get();
  gateway_api api(core);
  {
    outbox_scope outbox(*core);
    api.send_to_client(a.client_id(1), "first");
    outbox.ack(link, 1);
    api.join_group(a.client_id(1), "g");
    outbox.ack(link, 2);
    api.send_to_client(a.client_id(2), message::bytes(std::string("\0second", 7)));
    api.send_to_client(a.client_id(1, 0x1234), "stale epoch: nobody");
    outbox.ack(link, 3);
    outbox.ack(link_ref{link.gateway_id, link.serial + 1000}, 4);  // a link that is gone
  }
  ASSERT_TRUE(api.get_all_client_count().complete());
  a.wait([&a](auto& g) {
    EXPECT_EQ(g.acks.size(), 1U);
    EXPECT_EQ(g.acked_ids(), (std::vector<std::uint64_t>{1, 2, 3}));
    EXPECT_EQ(texts_sent(g.commands),
              (std::vector<std::string>{"first", std::string("\0second", 7)}));
    // In the order issued, each send naming its client, text as text, binary as binary.
    EXPECT_GE(g.commands.size(), 3U);
    if (g.commands.size() >= 3) {
      EXPECT_EQ(g.commands[0].send_to_clients().client_ids(0), a.client_id(1));
      EXPECT_FALSE(g.commands[0].send_to_clients().message().binary());
      EXPECT_EQ(g.commands[1].join_group().client_id(), a.client_id(1));
      EXPECT_EQ(g.commands[2].send_to_clients().client_ids(0), a.client_id(2));
      EXPECT_TRUE(g.commands[2].send_to_clients().message().binary());
    }
    return true;
  });
  core->stop();
}

TEST(ClusterCoreTest, KeepaliveDropsAGatewayThatStopsAnsweringAndRelinksWhenItWakes) {
  fake_gateway a(k_secret);
  link_log links;
  auto core = core_with_keepalive(a, links, 100ms, 500ms);
  ASSERT_TRUE(core->wait_ready(10s));
  // Stopped, not closed: the socket stays open, only the pings go unanswered.
  a.freeze();
  ASSERT_TRUE(links.wait(a.address(), false));
  a.wait([](auto& g) {
    EXPECT_EQ(g.closed, 0);  // the gateway is frozen: it cannot have closed the link itself
    return true;
  });
  a.thaw();
  ASSERT_TRUE(links.wait(a.address(), true, 2));
  core->stop();
}

// Links held (the worker's handler queue is full) still notice a gateway that goes silent,
// within the keepalive timeout: a held link keeps taking what the gateway sends (its pongs)
// into its read buffer. A live gateway's held link stays up meanwhile. Before, a held link
// counted no silence at all, and the frozen gateway kept its link until reading resumed.
TEST(ClusterCoreTest, HeldLinkStillDropsAGatewayThatGoesSilent) {
  fake_gateway a(k_secret);
  link_log links;
  auto core = core_with_keepalive(a, links, 100ms, 500ms);
  ASSERT_TRUE(core->wait_ready(10s));
  core->hold_events(true);
  auto paused = [&core] {
    std::promise<std::size_t> n;
    core->post([&] { n.set_value(core->links_paused()); });
    return n.get_future().get();
  };
  ASSERT_EQ(paused(), 1U);
  // Alive: several timeouts held, the link stays up.
  EXPECT_FALSE(a.wait([](auto&) { return false; }, 2s));
  EXPECT_EQ(links.count(a.address(), false), 0);
  const auto frozen_at = std::chrono::steady_clock::now();
  a.freeze();
  ASSERT_TRUE(links.wait(a.address(), false));
  EXPECT_LT(std::chrono::steady_clock::now() - frozen_at, 2s);
  a.thaw();
  core->stop();
}

TEST(ClusterCoreTest, DrainWorkerTellsWhichGatewaysHaveTheWorkerAndWhichAreSilent) {
  fake_gateway a(k_secret);
  fake_gateway b(k_secret);
  a.set_worker_names({"w1", "w2"});
  b.set_worker_names({"w2"});
  auto core = std::make_shared<cluster_core>(test_options(k_secret, link::v2::PEER_ROLE_CLIENT));
  core->start();
  // A third gateway is listed but never reachable.
  registry::gateway_entry gone{"00000000000000ff", "127.0.0.1:1", {}, "gone"};
  core->set_gateways({a.entry(), b.entry(), gone});
  core->wait_ready(1s);
  gateway_api api(core);
  auto r = api.drain_worker("w1", 2s);
  ASSERT_FALSE(r.error);
  EXPECT_EQ(r.value, (std::map<std::string, bool>{{a.address(), true}, {b.address(), false}}));
  EXPECT_EQ(r.missing_gateways, std::vector<std::string>{"127.0.0.1:1"});
  r = api.drain_worker("w2", 2s);
  EXPECT_EQ(r.value, (std::map<std::string, bool>{{a.address(), true}, {b.address(), true}}));
  const auto cmds = a.commands_copy();
  ASSERT_EQ(cmds.size(), 2U);
  EXPECT_EQ(cmds[0].drain_worker().worker_name(), "w1");
  core->stop();
}

TEST(ClusterCoreTest, DrainGoesOnEveryLinkAndWaitsForEachAnswer) {
  fake_gateway a(k_secret);
  fake_gateway b(k_secret);
  auto core = started_core({a.entry(), b.entry()});
  ASSERT_TRUE(core->wait_ready(10s));
  const auto before = core->drain_generation();
  core->start_drain("upgrade");
  ASSERT_TRUE(a.wait([](auto& g) { return g.drains.size() == 1; }));
  ASSERT_TRUE(b.wait([](auto& g) { return g.drains.size() == 1; }));
  EXPECT_EQ(a.drains.front(), "upgrade");
  core->start_drain("again");  // idempotent
  // Nobody answered yet: the wait ends at its deadline, naming both.
  EXPECT_FALSE(core->wait_drain_answered(std::chrono::steady_clock::now() + 100ms));
  auto unanswered = core->drain_unanswered();
  std::sort(unanswered.begin(), unanswered.end());
  auto both = std::vector<std::string>{a.address(), b.address()};
  std::sort(both.begin(), both.end());
  EXPECT_EQ(unanswered, both);
  a.send_drain_ack();
  b.send_drain_ack();
  EXPECT_TRUE(core->wait_drain_answered(std::chrono::steady_clock::now() + 10s));
  EXPECT_TRUE(core->drain_unanswered().empty());
  EXPECT_EQ(core->drain_generation(), before + 2);  // one Drain per link, none for "again"
  a.wait([](auto& g) {
    EXPECT_EQ(g.drains.size(), 1U);
    return true;
  });
  core->stop();
}

}  // namespace
}  // namespace gwx::cluster
