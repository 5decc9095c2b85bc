// The worker runtime end to end against a fake gateway over TCP: events spread over handler
// threads yet in order per client, every event acknowledged, session write-back on the wire,
// connect decisions, and the start/stop hooks.
#include "worker/sdk/worker.hpp"

#include <gtest/gtest.h>

#include <map>
#include <numeric>
#include <set>
#include <thread>

#include "common/link/link_entries.hpp"
#include "tests/unit/cluster/fake_gateway.hpp"

namespace gwx {
namespace {

using namespace std::chrono_literals;
using fakes::fake_gateway;

constexpr const char* k_secret = "worker-secret";

// Echoes each message with the session value it saw; records threads per client.
struct probe_handler final : handler {
  std::mutex mutex;
  std::map<std::string, std::set<std::thread::id>> threads;
  std::atomic<int> started{0};
  std::atomic<int> stopped{0};
  std::atomic<int> events_before_start{0};

  void on_worker_start(gateway_api&) override { ++started; }
  void on_worker_stop(gateway_api&) override { ++stopped; }
  connect_decision on_websocket_connect(context&, const websocket_request& r) override {
    return r.header("authorization") == "ok" ? connect_decision::accept()
                                             : connect_decision::reject(401, "no");
  }
  void on_message(context& ctx, const message& msg) override {
    if (started == 0) {
      ++events_before_start;
    }
    {
      std::lock_guard lock(mutex);
      threads[ctx.client_id()].insert(std::this_thread::get_id());
    }
    if (msg.data.rfind("remember ", 0) == 0) {
      ctx.session()["memo"] = msg.data.substr(9);
    }
    const auto it = ctx.session().find("memo");
    ctx.send_to_current_client(msg.data + "|" + (it == ctx.session().end() ? "" : it->second));
  }
};

class WorkerTest : public ::testing::Test {
 protected:
  WorkerTest() : gw_(k_secret) {
    gw_.set_answer([](const link::v2::Query&) { return link::v2::QueryResult(); });
    auto app = std::make_unique<probe_handler>();
    probe_ = app.get();
    worker_options o;
    o.cluster.secret = k_secret;
    o.cluster.name = "probe-worker";
    o.threads = 3;
    o.on_link_change = [this](const std::string& address, bool up) {
      std::lock_guard lock(mutex_);
      link_changes_.push_back((up ? "linked " : "unlinked ") + address);
    };
    worker_ = std::make_unique<worker>(std::move(o), std::move(app));
    worker_->set_gateways({gw_.entry()});
    worker_->start();
  }

  link::v2::ClientEvent message_event(std::uint64_t id, const std::string& client,
                                      const std::string& text, std::uint64_t session_seq = 0) {
    return fakes::message_event(id, client, text, gw_.address(), session_seq);
  }

  // The texts sent to `client`, in arrival order.
  static std::vector<std::string> replies_to(const std::vector<link::v2::Command>& cmds,
                                             const std::string& client) {
    std::vector<std::string> out;
    for (const auto& c : cmds) {
      if (c.has_send_to_clients() && c.send_to_clients().client_ids(0) == client) {
        out.push_back(c.send_to_clients().message().data());
      }
    }
    return out;
  }

  static int count_sends(const fake_gateway& g) {
    return static_cast<int>(std::count_if(g.commands.begin(), g.commands.end(),
                                          [](const auto& c) { return c.has_send_to_clients(); }));
  }

  fake_gateway gw_;
  probe_handler* probe_ = nullptr;
  std::unique_ptr<worker> worker_;
  std::mutex mutex_;
  std::vector<std::string> link_changes_;
};

TEST_F(WorkerTest, EventsRunInOrderPerClientOnOneThreadEachAndAreAllAcknowledged) {
  ASSERT_TRUE(worker_->wait_ready(10s));
  EXPECT_EQ(probe_->started, 1);
  constexpr int k_clients = 6;
  constexpr int k_per_client = 40;
  std::vector<std::string> clients;
  for (int c = 0; c < k_clients; ++c) {
    clients.push_back(gw_.client_id(static_cast<std::uint64_t>(c + 1)));
  }
  std::uint64_t id = 0;
  for (int i = 0; i < k_per_client; ++i) {
    for (const auto& c : clients) {
      gw_.send_event(message_event(++id, c, "m" + std::to_string(i)));
    }
  }
  const auto total = static_cast<std::size_t>(k_clients * k_per_client);
  ASSERT_TRUE(gw_.wait([&](auto& g) {
    return count_sends(g) == static_cast<int>(total) && g.acked_ids().size() >= total;
  }));
  const auto cmds = gw_.commands_copy();
  for (const auto& c : clients) {
    std::vector<std::string> expected;
    for (int i = 0; i < k_per_client; ++i) {
      expected.push_back("m" + std::to_string(i) + "|");
    }
    EXPECT_EQ(replies_to(cmds, c), expected);
    std::lock_guard lock(probe_->mutex);
    EXPECT_EQ(probe_->threads[c].size(), 1U) << "client " << c << " ran on several threads";
  }
  gw_.wait([&](auto& g) {
    auto acked = g.acked_ids();
    std::sort(acked.begin(), acked.end());
    std::vector<std::uint64_t> all(total);
    std::iota(all.begin(), all.end(), 1);
    EXPECT_EQ(acked, all);  // each exactly once
    EXPECT_LE(g.acks.size(), total);
    return true;
  });
  EXPECT_EQ(probe_->events_before_start, 0);
  worker_->stop();
  EXPECT_EQ(probe_->stopped, 1);
  EXPECT_TRUE(gw_.wait([](auto& g) { return g.closed == 1; }));
  std::lock_guard lock(mutex_);
  EXPECT_EQ(link_changes_, std::vector<std::string>{"linked " + gw_.address()});
  worker_.reset();
}

TEST_F(WorkerTest, SessionIsWrittenBackAndSeenByTheNextEventAlreadyOnItsWay) {
  ASSERT_TRUE(worker_->wait_ready(10s));
  const auto c = gw_.client_id(42);
  gw_.send_event(message_event(1, c, "remember tea"));
  ASSERT_TRUE(gw_.wait([](auto& g) {
    return std::any_of(g.commands.begin(), g.commands.end(),
                       [](const auto& cmd) { return cmd.has_session_write(); });
  }));
  std::uint64_t seq = 0;
  for (const auto& cmd : gw_.commands_copy()) {
    if (cmd.has_session_write()) {
      EXPECT_EQ(cmd.session_write().client_id(), c);
      EXPECT_TRUE(cmd.session_write().merge());
      EXPECT_EQ(link_entries::find(cmd.session_write().session(), "memo")->value(), "tea");
      seq = cmd.session_write().writer_seq();
    }
  }
  ASSERT_GT(seq, 0U);
  // Sent by the gateway before it applied the write: old seq, no memo.
  gw_.send_event(message_event(2, c, "what"));
  // After: the gateway's session is authoritative again.
  auto later = message_event(3, c, "again", seq);
  link_entries::find_or_add(*later.mutable_client()->mutable_session(), "memo")
      ->set_value("coffee");
  gw_.send_event(later);
  ASSERT_TRUE(gw_.wait([&](auto& g) { return count_sends(g) == 3; }));
  EXPECT_EQ(replies_to(gw_.commands_copy(), c),
            (std::vector<std::string>{"remember tea|tea", "what|tea", "again|coffee"}));
}

// The gateway keeps the highest writer_seq a session got, also from a worker that is gone: a
// new worker's writes must still count as newer, or an event stamped with that old number
// makes the worker drop its own fresh write and show the handler a stale session.
TEST_F(WorkerTest, WritesOfANewWorkerAreNewerThanThoseAnEarlierWorkerLeft) {
  ASSERT_TRUE(worker_->wait_ready(10s));
  const auto c = gw_.client_id(43);
  // An earlier worker, started an hour ago, made a million writes (numbered from its start
  // time in milliseconds, shifted left by 20 bits).
  const auto hour_ago = std::chrono::duration_cast<std::chrono::milliseconds>(
      (std::chrono::system_clock::now() - 1h).time_since_epoch());
  const std::uint64_t earlier = (static_cast<std::uint64_t>(hour_ago.count()) << 20) + 1'000'000;
  gw_.send_event(message_event(1, c, "remember tea", earlier));
  // Sent before the gateway applied the write: the earlier worker's number, no memo.
  gw_.send_event(message_event(2, c, "what", earlier));
  ASSERT_TRUE(gw_.wait([&](auto& g) { return count_sends(g) == 2; }));
  const auto cmds = gw_.commands_copy();
  const auto write = std::find_if(cmds.begin(), cmds.end(),
                                  [](const auto& cmd) { return cmd.has_session_write(); });
  ASSERT_NE(write, cmds.end());
  EXPECT_GT(write->session_write().writer_seq(), earlier);
  EXPECT_EQ(replies_to(cmds, c), (std::vector<std::string>{"remember tea|tea", "what|tea"}));
}

TEST_F(WorkerTest, EventsNamingTheirClientGetTheInfoSentAheadWhileTheLinkLasts) {
  ASSERT_TRUE(worker_->wait_ready(10s));
  const auto c = gw_.client_id(43);
  const auto info = [&](const std::string& memo) {
    link::v2::ClientInfo i;
    i.set_client_id(c);
    i.set_remote_address("10.9.8.7");
    i.set_gateway_address(gw_.address());
    auto* e = i.add_session();
    e->set_key("memo");
    e->set_value(memo);
    return i;
  };
  const auto lean = [&](std::uint64_t id, const std::string& text) {
    auto ev = message_event(id, c, text);
    ev.clear_client();
    ev.set_client_id(c);
    return ev;
  };
  gw_.send_client_info(info("tea"));
  gw_.send_event(lean(1, "first"));
  gw_.send_event(lean(2, "second"));
  gw_.send_client_info(info("coffee"));  // the session changed at the gateway
  gw_.send_event(lean(3, "third"));
  ASSERT_TRUE(gw_.wait([&](auto& g) { return count_sends(g) == 3; }));
  EXPECT_EQ(replies_to(gw_.commands_copy(), c),
            (std::vector<std::string>{"first|tea", "second|tea", "third|coffee"}));
  // A new link starts from nothing: what the old one said is gone.
  gw_.drop_links();
  ASSERT_TRUE(gw_.wait([](auto& g) { return g.authenticated == 2; }));
  ASSERT_TRUE(worker_->wait_ready(10s));
  gw_.send_event(lean(4, "fourth"));
  ASSERT_TRUE(gw_.wait([&](auto& g) { return count_sends(g) == 4; }));
  EXPECT_EQ(replies_to(gw_.commands_copy(), c).back(), "fourth|");
}

TEST_F(WorkerTest, WebSocketDecisionGoesBackOnTheLink) {
  ASSERT_TRUE(worker_->wait_ready(10s));
  link::v2::ClientEvent ev;
  ev.set_event_id(7);
  ev.set_kind(link::v2::EVENT_KIND_CONNECT);
  ev.set_decision_required(true);
  ev.mutable_client()->set_client_id(gw_.client_id(5));
  ev.mutable_websocket()->set_path("/");
  gw_.send_event(ev);
  (*ev.mutable_websocket()->mutable_headers())["authorization"] = "ok";
  ev.set_event_id(8);
  ev.mutable_client()->set_client_id(gw_.client_id(6));
  gw_.send_event(ev);
  ASSERT_TRUE(gw_.wait([](auto& g) { return g.decisions.size() == 2; }));
  gw_.wait([&](auto& g) {
    std::map<std::uint64_t, std::uint32_t> status;
    for (const auto& d : g.decisions) {
      status[d.event_id()] = d.http_status();
    }
    EXPECT_EQ(status[7], 401U);
    EXPECT_EQ(status[8], 101U);
    return true;
  });
}

}  // namespace
}  // namespace gwx
