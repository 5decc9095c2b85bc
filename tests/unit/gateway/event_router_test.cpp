// event_router: sticky workers, holding and bounds, acknowledgements, redelivery and drain
// switch-over, with fake client and worker ports and time passed in (no sockets, no clock).
#include "gateway/event_router.hpp"

#include <gtest/gtest.h>

#include "common/client_id.hpp"
#include "tests/unit/gateway/fake_ports.hpp"

namespace gwx::gateway {
namespace {

using fakes::fake_client_port;
using fakes::fake_worker_port;
using namespace std::chrono_literals;

constexpr std::uint64_t k_epoch = 0x99;
constexpr unsigned k_loop = 2;

class EventRouterTest : public ::testing::Test {
 protected:
  using ids = std::vector<std::uint64_t>;

  client_record& add() {
    const std::uint64_t connection = (++next_ << 8) | k_loop;
    auto port = std::make_shared<fake_client_port>();
    ports_.push_back(port);
    auto& c = dir_.add(connection, make_client_id("127.0.0.1", 7800, k_epoch, connection),
                       listener_, "10.0.0.1", 5000, port);
    dir_.announce(c);
    return c;
  }
  static fake_client_port& port_of(const client_record& c) {
    return static_cast<fake_client_port&>(c.port());
  }
  /// Builds a message event of `c` and dispatches it; returns its id.
  std::uint64_t send(client_record& c, const std::string& payload = "m") {
    const auto id = router().next_event_id(c);
    router().dispatch(c, make_message_event(c, id, payload, false), now_);
    return id;
  }
  std::shared_ptr<fake_worker_port> worker(std::uint64_t id, bool draining = false) {
    return std::make_shared<fake_worker_port>(id, draining);
  }
  /// Applies `workers` as the next set published.
  void set_workers(std::vector<std::shared_ptr<fake_worker_port>> workers) {
    ASSERT_TRUE(set_workers_as(++version_, std::move(workers)));
  }
  /// Applies `workers` as the set published as `version`; whether the router took it.
  bool set_workers_as(std::uint64_t version,
                      std::vector<std::shared_ptr<fake_worker_port>> workers) {
    return router().set_workers(version, {workers.begin(), workers.end()}, now_);
  }
  event_router& router() {
    if (!router_) {
      router_ = std::make_unique<event_router>(dir_, k_loop, config_, metrics_, gateway_);
    }
    return *router_;
  }

  delivery_config config_;
  event_metrics metrics_;
  std::string gateway_ = "127.0.0.1:7800";
  listener_config listener_;
  client_directory dir_{k_epoch, k_loop};
  std::unique_ptr<event_router> router_;
  std::vector<std::shared_ptr<fake_client_port>> ports_;
  std::uint64_t next_ = 0;
  std::uint64_t version_ = 0;
  event_router::clock::time_point now_{std::chrono::hours(1)};
};

TEST_F(EventRouterTest, EventIdsNameTheirLoopAndClient) {
  auto& a = add();
  const auto first = router().next_event_id(a);
  const auto second = router().next_event_id(a);
  EXPECT_NE(first, second);
  EXPECT_EQ(event_router::loop_of_event(first), k_loop);
  EXPECT_EQ(((first >> 24) << 8) | k_loop, a.connection());
}

TEST_F(EventRouterTest, AClientSticksToOneWorkerAndNewClientsTakeTurns) {
  auto w1 = worker(1);
  auto w2 = worker(2);
  set_workers({w1, w2});
  auto& a = add();
  auto& b = add();
  const auto a1 = send(a);
  const auto b1 = send(b);
  const auto a2 = send(a);
  EXPECT_EQ(w1->ids(), (ids{a1, a2}));
  EXPECT_EQ(w2->ids(), (ids{b1}));
  EXPECT_EQ(a.delivery().worker_id(), 1U);
  EXPECT_EQ(a.delivery().unacked_count(), 2U);
  // What gwxctl workers shows: per worker, its clients and events in flight.
  auto& c = add();
  send(c);  // third client: w1's turn again
  router().on_acks({b1}, now_);
  const auto by_worker = router().counts().by_worker;
  ASSERT_EQ(by_worker.size(), 2U);
  EXPECT_EQ(by_worker.at(1).clients, 2U);
  EXPECT_EQ(by_worker.at(1).in_flight, 3U);
  EXPECT_EQ(by_worker.at(2).clients, 1U);
  EXPECT_EQ(by_worker.at(2).in_flight, 0U);
}

TEST_F(EventRouterTest, DrainingWorkersGetNoNewClients) {
  auto draining = worker(1, true);
  auto live = worker(2);
  set_workers({draining, live});
  auto& a = add();
  auto& b = add();
  send(a);
  send(b);
  EXPECT_TRUE(draining->events.empty());
  EXPECT_EQ(live->events.size(), 2U);
}

TEST_F(EventRouterTest, EventsWaitForAWorkerAndGoOutInOrder) {
  auto& a = add();
  const auto e1 = send(a, "one");
  const auto e2 = send(a, "two");
  EXPECT_EQ(a.delivery().held_count(), 2U);
  EXPECT_EQ(router().counts().queued, 2U);
  auto w = worker(7);
  set_workers({w});
  EXPECT_EQ(w->ids(), (ids{e1, e2}));
  EXPECT_EQ(a.delivery().held_count(), 0U);
  EXPECT_EQ(router().counts().in_flight, 2U);
}

TEST_F(EventRouterTest, AcknowledgedEventsAreForgottenAndAClosedClientWithThem) {
  auto w = worker(1);
  set_workers({w});
  auto& a = add();
  const auto e1 = send(a);
  const auto e2 = send(a);
  router().on_acks({e1}, now_ + 5ms);
  EXPECT_EQ(a.delivery().unacked_count(), 1U);
  const auto connection = a.connection();
  port_of(a).state = client_state::closed;
  router().forget_if_done(a);  // e2 still unacknowledged: kept
  ASSERT_NE(dir_.find_connection(connection), nullptr);
  router().on_acks({e2, 12345}, now_ + 6ms);  // unknown ids are ignored
  EXPECT_EQ(dir_.find_connection(connection), nullptr);
  EXPECT_EQ(router().pending(), 0U);
}

TEST_F(EventRouterTest, AVanishedWorkersEventsAreRedeliveredFlaggedAndFirst) {
  auto w1 = worker(1);
  auto w2 = worker(2);
  set_workers({w1});
  auto& a = add();
  const auto e1 = send(a);
  const auto e2 = send(a);
  router().on_acks({e1}, now_);
  set_workers({});  // w1 is gone: e2 waits, then a new event behind it
  const auto e3 = send(a);
  set_workers({w2});
  ASSERT_EQ(w2->ids(), (ids{e2, e3}));
  EXPECT_TRUE(is_redelivered(w2->events[0]));
  EXPECT_FALSE(is_redelivered(w2->events[1]));
  EXPECT_EQ(router().counts().redelivered, 1U);
  EXPECT_EQ(a.delivery().worker_id(), 2U);
}

TEST_F(EventRouterTest, AtMostOnceKeepsNothingAndRedeliversNothing) {
  config_.at_most_once = true;
  auto w1 = worker(1);
  auto w2 = worker(2);
  set_workers({w1});
  auto& a = add();
  send(a);
  EXPECT_EQ(a.delivery().unacked_count(), 0U);
  set_workers({w2});
  EXPECT_TRUE(w2->events.empty());
  EXPECT_EQ(router().counts().redelivered, 0U);
}

TEST_F(EventRouterTest, OrderHoldsAcrossADrainSwitchOver) {
  auto w1 = worker(1);
  set_workers({w1});
  auto& a = add();
  const auto e1 = send(a);
  auto w2 = worker(2);
  set_workers({worker(1, true), w2});
  // w1 drains while e1 is unacknowledged: the next event waits rather than overtake it.
  // (The draining port is a new object with w1's id; events would still reach w1's link.)
  const auto e2 = send(a);
  EXPECT_TRUE(w2->events.empty());
  EXPECT_EQ(a.delivery().held_count(), 1U);
  router().on_acks({e1}, now_);
  EXPECT_EQ(w2->ids(), (ids{e2}));
  EXPECT_EQ(w1->ids(), (ids{e1}));
}

TEST_F(EventRouterTest, NoRouteMeansNoWorkerAtAllButNotAFinishingOne) {
  auto& a = add();
  EXPECT_FALSE(router().has_route(a, now_));
  set_workers({worker(1)});
  send(a);
  set_workers({worker(1, true)});
  EXPECT_TRUE(router().has_route(a, now_));  // it waits for its draining worker
}

TEST_F(EventRouterTest, TheCountBoundDropsTheOldestEvents) {
  config_.queue_max_events = 2;
  auto& a = add();
  send(a);
  const auto e2 = send(a);
  const auto e3 = send(a);
  EXPECT_EQ(a.delivery().held_count(), 2U);
  EXPECT_EQ(router().counts().dropped, 1U);
  auto w = worker(1);
  set_workers({w});
  EXPECT_EQ(w->ids(), (ids{e2, e3}));
  EXPECT_TRUE(port_of(a).closes.empty());
}

TEST_F(EventRouterTest, ALargeEventDisplacesAsManyOldEventsAsTheByteBoundNeeds) {
  auto& a = add();
  // Room for eight small events and a half: the large one weighs about five small ones.
  const auto small_size = event_size(make_message_event(a, 1, std::string(40, 's'), false));
  config_.queue_max_bytes = small_size * 17 / 2;
  ids small;
  for (int i = 0; i < 8; ++i) {
    small.push_back(send(a, std::string(40, 's')));
  }
  ASSERT_EQ(a.delivery().held_count(), 8U);  // within both bounds: nothing dropped yet
  ASSERT_EQ(router().counts().dropped, 0U);
  const auto large = send(a, std::string(small_size * 5, 'L'));
  // The large one needs room for all of itself: several small ones go, not just the oldest.
  EXPECT_LE(a.delivery().held_bytes(), config_.queue_max_bytes);
  const auto kept = a.delivery().held_count() - 1;
  EXPECT_LE(kept, 3U);
  EXPECT_EQ(router().counts().dropped, 8U - kept);

  auto w = worker(1);
  set_workers({w});
  ids expected(small.end() - static_cast<std::ptrdiff_t>(kept), small.end());
  expected.push_back(large);
  EXPECT_EQ(w->ids(), expected);  // the newest, in order
  EXPECT_TRUE(port_of(a).closes.empty());
}

TEST_F(EventRouterTest, AnEventOverTheByteBoundByItselfIsHeldAlone) {
  config_.queue_max_bytes = 1000;
  auto& a = add();
  send(a, "one");
  send(a, "two");
  const auto huge = send(a, std::string(5000, 'H'));
  EXPECT_EQ(a.delivery().held_count(), 1U);
  EXPECT_EQ(router().counts().dropped, 2U);
  const auto next = send(a, "after");  // the huge one goes for it
  EXPECT_EQ(router().counts().dropped, 3U);
  auto w = worker(1);
  set_workers({w});
  EXPECT_EQ(w->ids(), (ids{next}));
  EXPECT_NE(huge, next);
}

TEST_F(EventRouterTest, TheByteBoundWithTheClosePolicyClosesTheClient) {
  config_.queue_max_bytes = 300;
  config_.queue_close_client = true;
  auto& a = add();
  send(a, "small");
  EXPECT_TRUE(port_of(a).closes.empty());
  send(a, std::string(300, 'x'));
  ASSERT_EQ(port_of(a).closes.size(), 1U);
  EXPECT_EQ(port_of(a).closes[0].rfind("reason[queue_policy] 1013: ", 0), 0U);
  EXPECT_EQ(a.delivery().held_count(), 2U);  // nothing dropped: the worker sees them later
  EXPECT_EQ(router().counts().dropped, 0U);
}

TEST_F(EventRouterTest, TheAgeSweepDropsOnlyEventsOlderThanTheBound) {
  config_.queue_max_age = 1000ms;
  auto& a = add();
  send(a);
  now_ += 600ms;
  const auto young = send(a);
  router().sweep(now_ + 300ms);
  EXPECT_EQ(a.delivery().held_count(), 2U);
  router().sweep(now_ + 500ms);
  EXPECT_EQ(a.delivery().held_count(), 1U);
  EXPECT_EQ(router().counts().dropped, 1U);
  auto w = worker(1);
  set_workers({w});
  EXPECT_EQ(w->ids(), (ids{young}));
}

TEST_F(EventRouterTest, TheAgeSweepWithTheClosePolicyClosesAndAClosedClientIsForgotten) {
  config_.queue_max_age = 1000ms;
  config_.queue_close_client = true;
  auto& a = add();
  send(a);
  router().sweep(now_ + 2s);
  ASSERT_EQ(port_of(a).closes.size(), 1U);
  EXPECT_EQ(port_of(a).closes[0].rfind("reason[queue_policy] 1013: ", 0), 0U);

  config_.queue_close_client = false;
  router_.reset();
  auto& b = add();
  send(b);
  const auto connection = b.connection();
  port_of(b).state = client_state::closed;
  router().sweep(now_ + 2s);  // its only event expired: nothing keeps it
  EXPECT_EQ(dir_.find_connection(connection), nullptr);
}

TEST_F(EventRouterTest, TheInFlightCountBoundHoldsEventsAndPausesReading) {
  config_.inflight_max_events = 2;
  auto w = worker(1);
  set_workers({w});
  auto& a = add();
  const auto e1 = send(a);
  const auto e2 = send(a);
  EXPECT_FALSE(port_of(a).paused);
  const auto e3 = send(a);
  const auto e4 = send(a);
  EXPECT_EQ(w->ids(), (ids{e1, e2}));
  EXPECT_EQ(a.delivery().held_count(), 2U);
  EXPECT_TRUE(port_of(a).paused);
  EXPECT_TRUE(a.delivery().paused());
  EXPECT_EQ(port_of(a).reading, (std::vector<std::string>{"pause"}));  // paused once

  // One ack makes room for one event: still paused while one waits.
  router().on_acks({e1}, now_);
  EXPECT_EQ(w->ids(), (ids{e1, e2, e3}));
  EXPECT_TRUE(port_of(a).paused);
  // The next ack empties the queue: reading resumes, order kept.
  router().on_acks({e2}, now_);
  EXPECT_EQ(w->ids(), (ids{e1, e2, e3, e4}));
  EXPECT_EQ(a.delivery().held_count(), 0U);
  EXPECT_FALSE(port_of(a).paused);
  EXPECT_EQ(port_of(a).reading, (std::vector<std::string>{"pause", "resume"}));
  EXPECT_EQ(router().counts().dropped, 0U);
}

TEST_F(EventRouterTest, TheInFlightByteBoundHoldsButOneEventAlwaysFits) {
  config_.inflight_max_bytes = 1000;
  auto w = worker(1);
  set_workers({w});
  auto& a = add();
  auto& b = add();
  const auto big = send(a, std::string(5000, 'x'));  // over the bound alone: still goes out
  const auto small = send(a, "s");
  EXPECT_EQ(w->ids(), (ids{big}));
  EXPECT_TRUE(port_of(a).paused);
  const auto other = send(b, "b");  // the bound is per client: b is not held back
  EXPECT_EQ(w->ids(), (ids{big, other}));
  EXPECT_FALSE(port_of(b).paused);
  router().on_acks({big}, now_);
  EXPECT_EQ(w->ids(), (ids{big, other, small}));
  EXPECT_FALSE(port_of(a).paused);
}

TEST_F(EventRouterTest, ALinkUnderBackpressureHoldsEventsUntilItDrains) {
  auto w = worker(1);
  set_workers({w});
  auto& a = add();
  const auto e1 = send(a);
  w->congested = true;
  const auto e2 = send(a);
  const auto e3 = send(a);
  EXPECT_EQ(w->ids(), (ids{e1}));
  EXPECT_EQ(a.delivery().held_count(), 2U);
  EXPECT_TRUE(port_of(a).paused);
  router().sweep(now_ + 1ms);  // still congested: nothing moves
  EXPECT_EQ(w->ids(), (ids{e1}));
  w->congested = false;
  router().sweep(now_ + 2ms);  // the periodic sweep retries
  EXPECT_EQ(w->ids(), (ids{e1, e2, e3}));
  EXPECT_FALSE(port_of(a).paused);
  EXPECT_EQ(a.delivery().unacked_count(), 3U);
}

TEST_F(EventRouterTest, HeldBackEventsStillGoFirstToTheNextWorker) {
  config_.inflight_max_events = 1;
  auto& a = add();
  auto w1 = worker(1);
  set_workers({w1});
  auto w2 = worker(2);
  const auto e1 = send(a);
  const auto e2 = send(a);
  const auto e3 = send(a);
  set_workers({w2});  // w1 vanished with e1: e1 first (flagged), then e2 once e1 is acked
  EXPECT_EQ(w2->ids(), (ids{e1}));
  EXPECT_TRUE(is_redelivered(w2->events[0]));
  router().on_acks({e1}, now_);
  router().on_acks({e2}, now_);
  EXPECT_EQ(w2->ids(), (ids{e1, e2, e3}));
  EXPECT_FALSE(port_of(a).paused);
}

TEST_F(EventRouterTest, AnEventWhoseWorkersKeepVanishingIsQuarantined) {
  config_.max_attempts = 3;
  auto& a = add();
  auto& b = add();
  std::vector<std::shared_ptr<fake_worker_port>> seen;
  auto next_worker = [&] {
    seen.push_back(worker(seen.size() + 1));
    set_workers({seen.back()});
    return seen.back();
  };
  auto first = next_worker();
  const auto poison = send(a);
  const auto fine = send(b);
  router().on_acks({fine}, now_);
  // Attempts 2 and 3: each new worker gets it and vanishes without acknowledging it.
  EXPECT_EQ(next_worker()->ids(), (ids{poison}));
  EXPECT_EQ(next_worker()->ids(), (ids{poison}));
  EXPECT_EQ(router().counts().dropped, 0U);
  // The third vanishing: dropped, not handed out a fourth time; the client goes on.
  auto last = next_worker();
  EXPECT_TRUE(last->events.empty());
  EXPECT_EQ(router().counts().dropped, 1U);
  EXPECT_EQ(router().counts().redelivered, 2U);
  EXPECT_EQ(a.delivery().unacked_count(), 0U);
  EXPECT_EQ(a.delivery().held_count(), 0U);
  const auto after = send(a);
  EXPECT_EQ(last->ids(), (ids{after}));
  EXPECT_TRUE(port_of(a).closes.empty());
  EXPECT_EQ(first->ids(), (ids{poison, fine}));
}

// The gateway publishes each worker set to every loop, but a loop's post to itself can queue
// behind a later post from another thread: a set that arrives after a newer one is stale.
TEST_F(EventRouterTest, AWorkerSetThatArrivesAfterANewerOneIsIgnored) {
  config_.max_attempts = 3;
  auto w1 = worker(1);
  auto w2 = worker(2);
  ASSERT_TRUE(set_workers_as(1, {w1, w2}));
  auto& a = add();
  auto& b = add();
  const auto ea = send(a);
  const auto eb = send(b);
  ASSERT_EQ(w1->ids(), (ids{ea}));
  ASSERT_EQ(w2->ids(), (ids{eb}));
  // Both links die one after the other: a's event was handed to w1, then to w2.
  ASSERT_TRUE(set_workers_as(2, {w2}));
  ASSERT_TRUE(set_workers_as(3, {}));
  // Both workers link again; the set with both new links (5) arrives before the one with the
  // first of them only (4). Each client's events go to one of them: a's for the third time.
  auto w3 = worker(3);
  auto w4 = worker(4);
  ASSERT_TRUE(set_workers_as(5, {w3, w4}));
  ASSERT_EQ(w3->events.size() + w4->events.size(), 2U);
  EXPECT_FALSE(set_workers_as(4, {w3}));
  // Nothing was taken for lost: no event dropped or handed out again, w4 keeps its clients.
  EXPECT_EQ(router().counts().dropped, 0U);
  EXPECT_EQ(router().counts().redelivered, 3U);
  EXPECT_EQ(w3->events.size() + w4->events.size(), 2U);
  auto& on_w4 = a.delivery().worker_id() == 4 ? a : b;
  EXPECT_EQ(on_w4.delivery().worker_id(), 4U);
  const auto next = send(on_w4);
  EXPECT_EQ(w4->ids().back(), next);
  // A set as old as the last one stays ignored; the next newer one applies.
  EXPECT_FALSE(set_workers_as(5, {}));
  router().on_acks({ea, eb, next}, now_);
  EXPECT_TRUE(set_workers_as(6, {w4}));
  EXPECT_EQ(router().pending(), 0U);
  EXPECT_EQ(router().counts().dropped, 0U);
}

// Who a client is goes to a link once, ahead of the client's first event there, and again
// only after its uid or session changed.
class ClientInfoRoutingTest : public EventRouterTest {
 protected:
  using log = std::vector<std::string>;
  static std::string ev(std::uint64_t id) { return "event " + std::to_string(id); }
  static std::string info(const client_record& c) { return "info " + c.id(); }
  void set_uid(client_record& c, const std::string& uid) { dir_.bind(c, uid); }
  void set_session(client_record& c, const std::string& key, const std::string& value,
                   std::uint64_t writer_seq) {
    link::v2::SessionWrite w;
    w.set_merge(true);
    w.set_writer_seq(writer_seq);
    auto* e = w.add_session();
    e->set_key(key);
    e->set_value(value);
    dir_.write_session(c, w);
  }
  std::uint64_t close(client_record& c) {
    const auto id = router().next_event_id(c);
    auto event = make_close_event(c, id, gateway_, "gone");
    dir_.forget_membership(c);
    router().dispatch(c, std::move(event), now_);
    return id;
  }
};

TEST_F(ClientInfoRoutingTest, OnceAheadOfAClientsFirstEventOnALink) {
  listener_.bound_url = "ws://0.0.0.0:8080/";
  auto w = worker(1);
  set_workers({w});
  auto& a = add();
  auto& b = add();
  const auto a1 = send(a);
  const auto a2 = send(a);
  const auto b1 = send(b);
  const auto a3 = send(a);
  EXPECT_EQ(w->log, (log{info(a), ev(a1), ev(a2), info(b), ev(b1), ev(a3)}));
  ASSERT_EQ(w->infos.size(), 2U);
  const auto& i = w->infos[0];
  EXPECT_EQ(i.client_id(), a.id());
  EXPECT_EQ(i.remote_address(), "10.0.0.1");
  EXPECT_EQ(i.remote_port(), 5000U);
  EXPECT_EQ(i.gateway_address(), "127.0.0.1:7800");
  EXPECT_EQ(i.listener(), "ws://0.0.0.0:8080/");
  EXPECT_TRUE(i.uid().empty());
  EXPECT_EQ(i.session_size(), 0);
}

TEST_F(ClientInfoRoutingTest, AgainAfterTheUidOrSessionChangedButNotForGroups) {
  auto w = worker(1);
  set_workers({w});
  auto& a = add();
  const auto e1 = send(a);
  set_uid(a, "alice");
  const auto e2 = send(a);
  const auto e3 = send(a);
  dir_.join(a, "lobby");  // groups are not part of the info
  const auto e4 = send(a);
  set_session(a, "nick", "al", 42);
  const auto e5 = send(a);
  dir_.bind(a, "alice");  // the same uid again: nothing changed
  const auto e6 = send(a);
  dir_.bind(a, "");  // unbound
  const auto e7 = send(a);
  EXPECT_EQ(w->log, (log{info(a), ev(e1), info(a), ev(e2), ev(e3), ev(e4), info(a), ev(e5), ev(e6),
                         info(a), ev(e7)}));
  ASSERT_EQ(w->infos.size(), 4U);
  EXPECT_EQ(w->infos[1].uid(), "alice");
  EXPECT_EQ(w->infos[2].uid(), "alice");
  ASSERT_EQ(w->infos[2].session_size(), 1);
  EXPECT_EQ(w->infos[2].session(0).value(), "al");
  EXPECT_EQ(w->infos[2].session_seq(), 42U);
  EXPECT_TRUE(w->infos[3].uid().empty());
}

TEST_F(ClientInfoRoutingTest, AgainToTheWorkerRedeliveredEventsGoTo) {
  auto w1 = worker(1);
  auto w2 = worker(2);
  set_workers({w1});
  auto& a = add();
  const auto e1 = send(a);
  const auto e2 = send(a);
  set_uid(a, "alice");  // changed while e1 and e2 are in flight
  set_workers({w2});    // w1 vanished before acknowledging anything
  const auto e3 = send(a);
  // The stored events go out as they were (flagged), the info ahead of them is today's.
  EXPECT_EQ(w2->log, (log{info(a), ev(e1), ev(e2), ev(e3)}));
  EXPECT_EQ(w2->infos.at(0).uid(), "alice");
  EXPECT_TRUE(is_redelivered(w2->events[0]));
  // Back on a link the client never used (a reconnect is a new link id): info again.
  auto w3 = worker(3);
  set_workers({w3});
  EXPECT_EQ(w3->log, (log{info(a), ev(e1), ev(e2), ev(e3)}));
}

TEST_F(ClientInfoRoutingTest, AgainToTheWorkerADrainMovesTheClientTo) {
  auto w1 = worker(1);
  set_workers({w1});
  auto& a = add();
  const auto e1 = send(a);
  auto w2 = worker(2);
  set_workers({worker(1, true), w2});
  const auto e2 = send(a);  // waits for e1's acknowledgement
  router().on_acks({e1}, now_);
  const auto e3 = send(a);
  EXPECT_EQ(w1->log, (log{info(a), ev(e1)}));
  EXPECT_EQ(w2->log, (log{info(a), ev(e2), ev(e3)}));
}

TEST_F(ClientInfoRoutingTest, HeldEventsGetItWhenAWorkerCameAndACloseCarriesItsOwn) {
  auto& a = add();
  auto& b = add();
  set_uid(a, "alice");
  set_uid(b, "bob");
  const auto a1 = send(a);
  const auto b1 = close(b);  // its only event, and the worker never heard of b
  auto w = worker(1);
  set_workers({w});
  // Clients flush in no particular order; each client's frames keep theirs.
  auto got = w->log;
  std::erase(got, ev(b1));
  EXPECT_EQ(got, (log{info(a), ev(a1)}));
  ASSERT_EQ(w->events.size(), 2U);
  const auto& closed = event_id_of(w->events[0]) == b1 ? w->events[0] : w->events[1];
  link::v2::Frame f;
  ASSERT_EQ(link_codec::decode(closed->wire, link_codec::limits{}, f).status,
            codec::decode_status::message);
  EXPECT_EQ(f.event().kind(), link::v2::EVENT_KIND_CLOSE);
  EXPECT_EQ(f.event().client().uid(), "bob");  // as it was when b closed
  EXPECT_EQ(f.event().client().remote_address(), "10.0.0.1");
}

TEST_F(ClientInfoRoutingTest, AtMostOnceSendsItTheSameWay) {
  config_.at_most_once = true;
  auto w = worker(1);
  set_workers({w});
  auto& a = add();
  const auto e1 = send(a);
  const auto e2 = send(a);
  set_session(a, "k", "v", 0);  // written by a push client: no writer_seq
  const auto e3 = send(a);
  EXPECT_EQ(w->log, (log{info(a), ev(e1), ev(e2), info(a), ev(e3)}));
}

}  // namespace
}  // namespace gwx::gateway
