// The handler pool's byte bound against a fake gateway over TCP: handlers slower than the
// events make the worker stop reading its link (the gateway keeps what was not read) instead of
// queueing without limit, and reading resumes once they caught up; a handler that waits for a
// query's answer queued behind the held events still gets it. Nothing is lost or reordered.
#include "worker/sdk/handler_pool.hpp"

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <future>
#include <numeric>
#include <sstream>

#include "common/cluster/gateway_api.hpp"
#include "tests/unit/cluster/fake_gateway.hpp"

namespace gwx::sdk {
namespace {

using namespace std::chrono_literals;
using fakes::fake_gateway;

constexpr const char* k_secret = "pool-secret";
constexpr std::size_t k_bound = 1 << 20;
constexpr std::size_t k_payload = 256 * 1024;
// 64 MiB in all: far more than the bound and the sockets' buffers together.
constexpr std::uint64_t k_flood = 256;
// Over the bound at most by the frames of the read that reached it (a read holds a large frame
// and what follows it in the buffer).
constexpr std::size_t k_read_slack = 2 * k_payload + 64 * 1024;

// Records the messages it runs, per client; "wait" blocks until the test opens the gate and
// "ask" makes a blocking query.
struct recording_app final : handler {
  std::mutex mutex;
  std::map<std::string, std::vector<std::string>> seen;
  std::shared_future<void> gate;
  std::promise<void> waiting;  // a handler waits at the gate
  std::atomic<bool> waited{false};
  std::atomic<bool> asked_ok{false};
  std::atomic<bool> asked{false};

  void on_message(context& ctx, const message& msg) override {
    const auto text = msg.data.substr(0, msg.data.find(' '));
    if (text == "wait") {
      if (!waited.exchange(true)) {
        waiting.set_value();
      }
      gate.wait();
    } else if (text == "ask") {
      const auto count = ctx.api().get_all_client_count();
      asked_ok = count.complete() && count.value == 7;
      asked = true;
    }
    std::lock_guard lock(mutex);
    seen[ctx.client_id()].push_back(text);
  }
  std::size_t total() {
    std::lock_guard lock(mutex);
    std::size_t n = 0;
    for (const auto& [c, texts] : seen) {
      n += texts.size();
    }
    return n;
  }
};

class HandlerPoolBoundTest : public ::testing::TestWithParam<std::size_t> {
 protected:
  HandlerPoolBoundTest() : gw_(k_secret), gate_(open_.get_future().share()) {
    gw_.set_answer([](const link::v2::Query&) {
      link::v2::QueryResult r;
      r.set_count(7);
      return r;
    });
    app_.gate = gate_;
    cluster::core_options o;
    o.link.secret = k_secret;
    o.link.name = "pool-test";
    o.link.backoff_initial = 10ms;
    o.link.backoff_max = 100ms;
    o.link.keepalive_interval = 100ms;
    // Long enough that the fake gateway's thread, busy queueing the 64 MiB flood (over a second
    // under TSan), is not dropped as silent: the fake does not redeliver, the flood would be lost.
    o.link.keepalive_timeout = 10s;
    // Long enough that an answer never read shows up as a failed query.
    o.query_timeout = 20s;
    core_ = std::make_shared<cluster::cluster_core>(std::move(o));
    api_ = std::make_unique<gateway_api>(core_);
    pool_ = std::make_unique<handler_pool>(GetParam(), app_, *api_, *core_, k_bound);
    core_->set_event_handler([this](const cluster::link_ref& link, link::v2::ClientEvent& event,
                                    std::string_view payload,
                                    const link_clients::client_view* client) {
      pool_->dispatch(link, event, payload, client);
    });
    core_->set_link_lost_handler([this](const cluster::link_ref& link, bool gateway_redelivers) {
      pool_->link_lost(link, gateway_redelivers);
    });
    core_->start();
    pool_->start();
    core_->set_gateways({gw_.entry()});
  }

  ~HandlerPoolBoundTest() override {
    open_gate();
    pool_->stop();
    core_->stop();
  }

  void open_gate() {
    if (!gate_open_) {
      gate_open_ = true;
      open_.set_value();
    }
  }

  link::v2::ClientEvent message_event(std::uint64_t id, const std::string& client,
                                      const std::string& text) {
    return fakes::message_event(id, client, text, gw_.address());
  }

  // Links whose reading is paused, as the network thread sees them.
  std::size_t links_paused() {
    std::promise<std::size_t> n;
    core_->post([&] { n.set_value(core_->links_paused()); });
    return n.get_future().get();
  }

 public:
  // Waits until `pred` holds; false at the deadline.
  template <typename Pred>
  static bool eventually(Pred pred, std::chrono::milliseconds limit = 20s) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!pred()) {
      if (std::chrono::steady_clock::now() >= deadline) {
        return false;
      }
      std::this_thread::sleep_for(5ms);
    }
    return true;
  }

 protected:
  // Every id in 1..n acknowledged exactly once.
  void expect_all_acknowledged(std::uint64_t n) {
    ASSERT_TRUE(gw_.wait([n](auto& g) { return g.acked_ids().size() >= n; }, 20s));
    gw_.wait([n](auto& g) {
      auto acked = g.acked_ids();
      std::sort(acked.begin(), acked.end());
      std::vector<std::uint64_t> all(n);
      std::iota(all.begin(), all.end(), 1);
      EXPECT_EQ(acked, all);
      return true;
    });
  }

  fake_gateway gw_;
  std::promise<void> open_;
  std::shared_future<void> gate_;
  bool gate_open_ = false;
  recording_app app_;
  std::shared_ptr<cluster::cluster_core> core_;
  std::unique_ptr<gateway_api> api_;
  std::unique_ptr<handler_pool> pool_;
};

// Handler threads only: inline handlers that block stop the loop itself, so nothing is read.
class HandlerPoolThreadsTest : public HandlerPoolBoundTest {};

// Handler threads stuck: the pool takes the bound and no more, the rest stays with the gateway
// (its link's queue, where its own bounds apply); once they run again everything arrives, in
// order, each event acknowledged once, and the link is read again.
TEST_P(HandlerPoolThreadsTest, StuckHandlersStopTheLinkBeingReadUntilTheyCatchUp) {
  ASSERT_TRUE(core_->wait_ready(10s));
  // Two clients, on one thread or on two: either way all of their events wait.
  const auto a = gw_.client_id(1);
  const auto b = gw_.client_id(2);
  std::vector<link::v2::ClientEvent> events;
  std::uint64_t id = 0;
  events.push_back(message_event(++id, a, "wait"));
  events.push_back(message_event(++id, b, "wait"));
  for (std::uint64_t i = 0; i < k_flood; ++i) {
    events.push_back(message_event(++id, i % 2 == 0 ? a : b,
                                   "m" + std::to_string(i) + " " + std::string(k_payload, 'x')));
  }
  gw_.send_events(std::move(events));
  ASSERT_EQ(app_.waiting.get_future().wait_for(20s), std::future_status::ready);
  ASSERT_TRUE(eventually([&] { return pool_->queued_bytes() >= k_bound; }));
  // Unbounded, the pool would hold all 64 MiB within milliseconds.
  EXPECT_FALSE(eventually([&] { return pool_->queued_bytes() > k_bound + k_read_slack; }, 1s))
      << pool_->queued_bytes() << " bytes queued";
  EXPECT_GT(gw_.queued_bytes(), 32U << 20) << "the gateway should keep what was not read";
  EXPECT_EQ(links_paused(), 1U);
  open_gate();
  const auto total = id;
  ASSERT_TRUE(eventually([&] { return app_.total() == total; }));
  expect_all_acknowledged(total);
  EXPECT_EQ(pool_->queued_bytes(), 0U);
  EXPECT_EQ(links_paused(), 0U);
  std::lock_guard lock(app_.mutex);
  std::map<std::string, std::vector<std::string>> expected;
  expected[a].emplace_back("wait");
  expected[b].emplace_back("wait");
  for (std::uint64_t i = 0; i < k_flood; ++i) {
    expected[i % 2 == 0 ? a : b].push_back("m" + std::to_string(i));
  }
  EXPECT_EQ(app_.seen, expected);
}

// The answer to a handler's query comes behind the events the gateway queued before it, and the
// handler waiting for it is the one that has to run them: the link must be read past the bound
// until the answer is in (not paused for the query timeout), then held until they have run.
TEST_P(HandlerPoolBoundTest, AQueryAnsweredBehindHeldEventsIsStillRead) {
  ASSERT_TRUE(core_->wait_ready(10s));
  const auto a = gw_.client_id(1);
  std::vector<link::v2::ClientEvent> events;
  std::uint64_t id = 0;
  events.push_back(message_event(++id, a, "ask"));
  for (std::uint64_t i = 0; i < k_flood; ++i) {
    events.push_back(
        message_event(++id, a, "m" + std::to_string(i) + " " + std::string(k_payload, 'x')));
  }
  const auto start = std::chrono::steady_clock::now();
  gw_.send_events(std::move(events));
  ASSERT_TRUE(eventually([&] { return app_.asked.load(); }));
  EXPECT_TRUE(app_.asked_ok) << "the query failed: its answer was not read";
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);
  // Reading resumes once they ran: a later event arrives too.
  gw_.send_event(message_event(++id, a, "after"));
  const auto total = id;
  ASSERT_TRUE(eventually([&] { return app_.total() == total; }));
  expect_all_acknowledged(total);
  EXPECT_EQ(pool_->queued_bytes(), 0U);
  EXPECT_EQ(links_paused(), 0U);
  std::vector<std::string> expected{"ask"};
  for (std::uint64_t i = 0; i < k_flood; ++i) {
    expected.push_back("m" + std::to_string(i));
  }
  expected.emplace_back("after");
  std::lock_guard lock(app_.mutex);
  EXPECT_EQ(app_.seen[a], expected);
}

// A link lost while events of it wait for a handler: a gateway that redelivers (at-least-once,
// said in its Welcome) hands them to another worker, so they are skipped here — run here too,
// their client would get two answers; a gateway that does not (at-most-once) has no other
// chance for them, so they still run. Either way the event whose handler was running when the
// link went down finishes. Both modes: inline, the handler waits in a query the gateway never
// answers (the loop runs under it, reads the events and sees the link go); threads, likewise.
TEST_P(HandlerPoolBoundTest, EventsQueuedForALostLinkAreSkippedOnlyWhenItsGatewayRedelivers) {
  ASSERT_TRUE(core_->wait_ready(10s));
  gw_.set_answer([](const link::v2::Query&) { return std::nullopt; });
  const auto a = gw_.client_id(1);
  std::uint64_t id = 0;
  int links = 1;
  for (const bool redelivers : {false, true}) {
    SCOPED_TRACE(redelivers ? "the gateway redelivers" : "the gateway does not redeliver");
    if (redelivers) {
      // A new link, whose Welcome says so.
      gw_.set_redelivers(true);
      gw_.drop_links();
      ++links;
      ASSERT_TRUE(gw_.wait([links](auto& g) { return g.authenticated == links; }));
      ASSERT_TRUE(eventually([&] {
        const auto gws = core_->gateways();
        return gws.size() == 1 && gws[0].linked;
      }));
    }
    {
      std::lock_guard lock(app_.mutex);
      app_.seen.clear();
    }
    const auto handled_before = pool_->handled();
    const auto skipped_before = pool_->skipped();
    auto queries = [this] {
      std::size_t n = 0;
      gw_.wait([&n](auto& g) {
        n = static_cast<std::size_t>(std::count(g.timeline.begin(), g.timeline.end(), "query"));
        return true;
      });
      return n;
    };
    const auto asked_before = queries();
    std::vector<link::v2::ClientEvent> events;
    events.push_back(message_event(++id, a, "ask"));
    for (int i = 0; i < 10; ++i) {
      events.push_back(message_event(++id, a, "m" + std::to_string(i)));
    }
    gw_.send_events(std::move(events));
    // The handler waits for its answer; the ten events behind it are queued in the pool.
    ASSERT_TRUE(eventually([&] { return queries() == asked_before + 1; }));
    ASSERT_TRUE(eventually([&] { return pool_->unfinished() == 11; })) << pool_->unfinished();
    EXPECT_EQ(pool_->handled(), handled_before);
    gw_.drop_links();
    ASSERT_TRUE(eventually([&] { return pool_->unfinished() == 0; })) << pool_->unfinished();
    std::vector<std::string> expected{"ask"};
    if (!redelivers) {
      for (int i = 0; i < 10; ++i) {
        expected.push_back("m" + std::to_string(i));
      }
    }
    EXPECT_EQ(pool_->skipped() - skipped_before, redelivers ? 10U : 0U);
    EXPECT_EQ(pool_->handled() - handled_before, expected.size());
    std::lock_guard lock(app_.mutex);
    EXPECT_EQ(app_.seen[a], expected);
    ++links;
    ASSERT_TRUE(gw_.wait([links](auto& g) { return g.authenticated == links; }));
  }
}

// A handler call that does not return is reported once it has run past the threshold, on a
// handler thread and on the network thread: stalled_handlers() (the gwx-worker gauge) counts it,
// and one warning line names the thread and the event kind however often the watch looks;
// once the call returns it is no longer counted. The log is captured by a default logger set
// before any thread that logs starts, and put back after they all ended.
TEST(HandlerPoolStall, AHandlerCallThatDoesNotReturnIsReportedAsStalled) {
  for (const std::size_t threads : {0, 2}) {
    SCOPED_TRACE(threads == 0 ? "inline" : "threads");
    auto lines = std::make_shared<std::ostringstream>();
    const auto previous = spdlog::default_logger();
    spdlog::set_default_logger(std::make_shared<spdlog::logger>(
        "capture", std::make_shared<spdlog::sinks::ostream_sink_mt>(*lines)));
    bool reported = false;
    std::size_t after_return = 1;
    {
      fake_gateway gw(k_secret);
      recording_app app;
      std::promise<void> open;
      app.gate = open.get_future().share();
      cluster::core_options o;
      o.link.secret = k_secret;
      o.link.name = "pool-test";
      auto core = std::make_shared<cluster::cluster_core>(std::move(o));
      gateway_api api(core);
      handler_pool pool(threads, app, api, *core, k_bound, 100ms);
      core->set_event_handler([&pool](const cluster::link_ref& link, link::v2::ClientEvent& event,
                                      std::string_view payload,
                                      const link_clients::client_view* client) {
        pool.dispatch(link, event, payload, client);
      });
      core->start();
      pool.start();
      core->set_gateways({gw.entry()});
      ASSERT_TRUE(core->wait_ready(10s));
      EXPECT_EQ(pool.stalled_handlers(), 0U);
      gw.send_event(fakes::message_event(1, gw.client_id(1), "wait", gw.address()));
      ASSERT_EQ(app.waiting.get_future().wait_for(20s), std::future_status::ready);
      reported = HandlerPoolBoundTest::eventually([&] { return pool.stalled_handlers() == 1; }, 5s);
      // Several looks of the watch (every 100 ms), one line.
      std::this_thread::sleep_for(600ms);
      open.set_value();
      HandlerPoolBoundTest::eventually([&] { return pool.stalled_handlers() == 0; }, 5s);
      after_return = pool.stalled_handlers();
      EXPECT_TRUE(gw.wait([](auto& g) { return g.acked_ids().size() == 1; }));
      pool.stop();
      core->stop();
    }
    spdlog::set_default_logger(previous);
    EXPECT_TRUE(reported);
    EXPECT_EQ(after_return, 0U);
    const auto text = lines->str();
    std::size_t warnings = 0;
    for (auto at = text.find("[warning]"); at != std::string::npos;
         at = text.find("[warning]", at + 1)) {
      ++warnings;
    }
    EXPECT_EQ(warnings, 1U) << text;
    EXPECT_NE(text.find(threads == 0 ? "the network thread" : "handler thread"), std::string::npos)
        << text;
    EXPECT_NE(text.find("EVENT_KIND_MESSAGE"), std::string::npos) << text;
  }
}

INSTANTIATE_TEST_SUITE_P(Modes, HandlerPoolBoundTest, ::testing::Values(0, 2),
                         [](const auto& info) {
                           return info.param == 0 ? std::string("Inline") : std::string("Threads");
                         });
INSTANTIATE_TEST_SUITE_P(Threads, HandlerPoolThreadsTest, ::testing::Values(1, 2));

}  // namespace
}  // namespace gwx::sdk
