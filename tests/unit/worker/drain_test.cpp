// Draining a worker against two fake gateways over TCP: Drain goes out on every link (and on a
// link that comes back), events that arrive before DrainAck are still handled and acknowledged,
// pushes from handlers and from on_worker_stop reach the gateways before the links close, a
// Drain frame from a gateway starts the drain, and a gateway that never answers only delays it
// until the timeout.
#include <gtest/gtest.h>

#include <future>
#include <numeric>

#include "common/link/link_entries.hpp"
#include "tests/unit/cluster/fake_gateway.hpp"
#include "worker/sdk/worker.hpp"

namespace gwx {
namespace {

using namespace std::chrono_literals;
using fakes::fake_gateway;

constexpr const char* k_secret = "drain-secret";

// Echoes every message as "echo <text>"; "block" waits until the test opens the gate. Its
// on_worker_stop pushes "bye" to every client and writes a session.
struct draining_app final : handler {
  std::promise<void> blocked;
  std::shared_future<void> gate;
  std::atomic<int> stops{0};
  std::mutex mutex;
  std::string last_client;

  void on_message(context& ctx, const message& msg) override {
    {
      std::lock_guard lock(mutex);
      last_client = ctx.client_id();
    }
    if (msg.data == "block") {
      blocked.set_value();
      gate.wait();
    }
    ctx.send_to_current_client("echo " + msg.data);
  }
  void on_worker_stop(gateway_api& api) override {
    ++stops;
    api.send_to_all("bye");
    std::lock_guard lock(mutex);
    if (!last_client.empty()) {
      api.update_session(last_client, {{"left", "yes"}});
    }
  }
};

class DrainTest : public ::testing::Test {
 protected:
  DrainTest() : a_(k_secret), b_(k_secret), gate_(open_.get_future().share()) {
    for (auto* g : {&a_, &b_}) {
      g->set_answer([](const link::v2::Query&) { return link::v2::QueryResult(); });
    }
  }

  ~DrainTest() override { open_gate(); }

  void start(std::function<void(const std::string&, const std::string&)> on_drain_request = {}) {
    auto app = std::make_unique<draining_app>();
    app_ = app.get();
    app_->gate = gate_;
    worker_options o;
    o.cluster.secret = k_secret;
    o.cluster.name = "draining-worker";
    o.threads = 2;
    o.on_drain_request = std::move(on_drain_request);
    worker_ = std::make_unique<worker>(std::move(o), std::move(app));
    worker_->set_gateways({a_.entry(), b_.entry()});
    worker_->start();
    ASSERT_TRUE(worker_->wait_ready(10s));
  }

  void open_gate() {
    if (!gate_opened_) {
      gate_opened_ = true;
      open_.set_value();
    }
  }

  static link::v2::ClientEvent message_event(const fake_gateway& g, std::uint64_t id,
                                             std::uint64_t client, const std::string& text) {
    link::v2::ClientEvent ev;
    ev.set_event_id(id);
    ev.set_kind(link::v2::EVENT_KIND_MESSAGE);
    ev.set_payload(text);
    ev.mutable_client()->set_client_id(g.client_id(client));
    ev.mutable_client()->set_gateway_address(g.address());
    return ev;
  }

  static std::vector<std::uint64_t> sorted_acks(const fake_gateway& g) {
    auto ids = g.acked_ids();
    std::sort(ids.begin(), ids.end());
    return ids;
  }

  static std::vector<std::uint64_t> ids(std::uint64_t from, std::uint64_t to) {
    std::vector<std::uint64_t> out(to - from + 1);
    std::iota(out.begin(), out.end(), from);
    return out;
  }

  static std::vector<std::string> sends_to(const fake_gateway& g, const std::string& client) {
    std::vector<std::string> out;
    for (const auto& c : g.commands) {
      if (c.has_send_to_clients() && c.send_to_clients().client_ids(0) == client) {
        out.push_back(c.send_to_clients().message().data());
      }
    }
    return out;
  }

  // Index of the first timeline entry equal to `what` (timeline size when absent).
  static std::size_t first(const fake_gateway& g, const std::string& what) {
    return static_cast<std::size_t>(std::find(g.timeline.begin(), g.timeline.end(), what) -
                                    g.timeline.begin());
  }

  fake_gateway a_;
  fake_gateway b_;
  std::promise<void> open_;
  std::shared_future<void> gate_;
  bool gate_opened_ = false;
  draining_app* app_ = nullptr;
  std::unique_ptr<worker> worker_;
};

TEST_F(DrainTest, HandlesEventsUntilDrainAckThenFlushesEverythingBeforeClosing) {
  start();
  for (std::uint64_t i = 1; i <= 5; ++i) {
    a_.send_event(message_event(a_, i, 1, "m" + std::to_string(i)));
  }
  for (std::uint64_t i = 1; i <= 3; ++i) {
    b_.send_event(message_event(b_, i, 1, "n" + std::to_string(i)));
  }
  ASSERT_TRUE(a_.wait([](auto& g) { return g.acked_ids().size() == 5; }));
  ASSERT_TRUE(b_.wait([](auto& g) { return g.acked_ids().size() == 3; }));

  // A handler is busy when the drain starts.
  a_.send_event(message_event(a_, 6, 2, "block"));
  app_->blocked.get_future().wait();
  auto drained = std::async(std::launch::async, [this] { return worker_->drain(20s, "test"); });
  ASSERT_TRUE(a_.wait([](auto& g) { return g.drains.size() == 1; }));
  ASSERT_TRUE(b_.wait([](auto& g) { return g.drains.size() == 1; }));
  EXPECT_EQ(a_.drains.front(), "test");

  // Routed before the gateway applied the drain: still handled.
  for (std::uint64_t i = 7; i <= 9; ++i) {
    a_.send_event(message_event(a_, i, 1, "late" + std::to_string(i)));
  }
  a_.send_drain_ack();
  b_.send_drain_ack();
  // The blocked event is not handled yet, so the drain cannot be over.
  EXPECT_NE(drained.wait_for(0s), std::future_status::ready);
  EXPECT_EQ(app_->stops, 0);
  open_gate();

  ASSERT_EQ(drained.wait_for(30s), std::future_status::ready);
  const auto report = drained.get();
  EXPECT_TRUE(report.complete);
  EXPECT_EQ(report.events_handled, 4U);  // "block" and the three late ones
  EXPECT_TRUE(report.unanswered_gateways.empty());
  EXPECT_EQ(report.unfinished_events, 0U);
  EXPECT_EQ(app_->stops, 1);

  ASSERT_TRUE(a_.wait([](auto& g) { return g.closed == 1; }));
  ASSERT_TRUE(b_.wait([](auto& g) { return g.closed == 1; }));
  a_.wait([&](auto& g) {
    EXPECT_EQ(sorted_acks(g), ids(1, 9));  // each exactly once
    EXPECT_EQ(sends_to(g, g.client_id(1)),
              (std::vector<std::string>{"echo m1", "echo m2", "echo m3", "echo m4", "echo m5",
                                        "echo late7", "echo late8", "echo late9"}));
    EXPECT_EQ(sends_to(g, g.client_id(2)), std::vector<std::string>{"echo block"});
    // Drain first; the acks, the handler's and on_worker_stop's pushes, then a confirmed
    // round-trip, then the close.
    const auto drain_at = first(g, "drain");
    const auto bye_at = first(g, "send bye");
    const auto closed_at = first(g, "closed");
    EXPECT_LT(drain_at, first(g, "ack 9"));
    EXPECT_LT(first(g, "ack 6"), bye_at);
    EXPECT_LT(first(g, "send echo block"), bye_at);
    EXPECT_LT(bye_at, closed_at);
    EXPECT_EQ(g.timeline.back(), "closed");
    EXPECT_EQ(g.timeline[g.timeline.size() - 2], "query");
    return true;
  });
  b_.wait([&](auto& g) {
    EXPECT_EQ(sorted_acks(g), ids(1, 3));
    EXPECT_LT(first(g, "send bye"), first(g, "closed"));
    EXPECT_EQ(g.timeline[g.timeline.size() - 2], "query");
    return true;
  });
  // The session write of on_worker_stop went to the last client's gateway before the close.
  const auto cmds = a_.commands_copy();
  const auto write =
      std::find_if(cmds.begin(), cmds.end(), [](const auto& c) { return c.has_session_write(); });
  ASSERT_NE(write, cmds.end());
  EXPECT_EQ(link_entries::find(write->session_write().session(), "left")->value(), "yes");

  worker_->stop();  // already stopped: nothing more happens
  EXPECT_EQ(app_->stops, 1);
}

TEST_F(DrainTest, DrainFrameFromAGatewayMakesTheWorkerDrainItself) {
  start();
  a_.set_auto_drain_ack(true);
  b_.set_auto_drain_ack(true);
  a_.send_event(message_event(a_, 1, 1, "before"));
  a_.send_drain("requested by an operator");
  // Every gateway hears the worker's Drain, not only the one that asked.
  ASSERT_TRUE(a_.wait([](auto& g) { return g.drains.size() == 1 && g.closed == 1; }));
  ASSERT_TRUE(b_.wait([](auto& g) { return g.drains.size() == 1 && g.closed == 1; }));
  a_.wait([](auto& g) {
    EXPECT_EQ(g.acked_ids(), std::vector<std::uint64_t>{1});
    return true;
  });
  worker_->stop();  // waits for the drain's own thread
  EXPECT_EQ(app_->stops, 1);
}

TEST_F(DrainTest, DrainRequestGoesToTheHookWhenOneIsSet) {
  std::promise<std::pair<std::string, std::string>> asked;
  start([&asked](const std::string& address, const std::string& reason) {
    asked.set_value({address, reason});
  });
  a_.send_drain("operator");
  auto f = asked.get_future();
  ASSERT_EQ(f.wait_for(10s), std::future_status::ready);
  EXPECT_EQ(f.get(), std::make_pair(a_.address(), std::string("operator")));
  b_.set_auto_drain_ack(true);
  a_.set_auto_drain_ack(true);
  EXPECT_TRUE(worker_->drain(20s, "hook").complete);
  EXPECT_EQ(app_->stops, 1);
}

TEST_F(DrainTest, ALinkThatDropsCountsAsAnsweredAndIsDrainedAgainWhenItComesBack) {
  start();
  auto drained = std::async(std::launch::async, [this] { return worker_->drain(20s, "test"); });
  ASSERT_TRUE(b_.wait([](auto& g) { return g.drains.size() == 1; }));
  b_.set_auto_drain_ack(true);
  b_.drop_links();
  // The worker links again and tells the new link too; A still holds the drain open.
  ASSERT_TRUE(b_.wait([](auto& g) { return g.authenticated == 2 && g.drains.size() == 2; }));
  a_.send_drain_ack();
  ASSERT_EQ(drained.wait_for(30s), std::future_status::ready);
  EXPECT_TRUE(drained.get().complete);
  EXPECT_EQ(app_->stops, 1);
}

TEST_F(DrainTest, AGatewayThatNeverAnswersOnlyDelaysTheDrainUntilItsTimeout) {
  start();
  b_.set_auto_drain_ack(true);
  a_.send_event(message_event(a_, 1, 1, "hello"));
  ASSERT_TRUE(a_.wait([](auto& g) { return g.acked_ids().size() == 1; }));
  const auto report = worker_->drain(300ms, "test");
  EXPECT_FALSE(report.complete);
  EXPECT_EQ(report.unanswered_gateways, std::vector<std::string>{a_.address()});
  // It still stopped properly: on_worker_stop ran and its push was flushed before the close.
  EXPECT_EQ(app_->stops, 1);
  ASSERT_TRUE(a_.wait([](auto& g) { return g.closed == 1; }));
  a_.wait([&](auto& g) {
    // No flush round-trip before on_worker_stop: the drain never got past A's silence.
    EXPECT_LT(first(g, "send bye"), first(g, "query"));
    EXPECT_LT(first(g, "query"), first(g, "closed"));
    return true;
  });
}

}  // namespace
}  // namespace gwx
