// Component tests: a real gateway_server in-process, a fake worker speaking the link protocol
// over loopback, and plain TCP clients.
#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

#include <asio.hpp>
#include <deque>
#include <functional>
#include <thread>

#include "common/client_id.hpp"
#include "common/link/client_info_cache.hpp"
#include "common/link/link_codec.hpp"
#include "common/link/link_entries.hpp"
#include "common/link/link_handshake.hpp"
#include "common/net/link_stream.hpp"
#include "gateway/gateway_server.hpp"

namespace gwx::gateway {
namespace {

using namespace std::chrono_literals;
using link::v2::Frame;

constexpr auto k_deadline = 5s;

std::uint16_t port_of(const std::string& url) {
  return static_cast<std::uint16_t>(std::stoi(url.substr(url.rfind(':') + 1)));
}

class GatewayLinkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    listener_config defaults;
    defaults.max_message = 64;
    restart([](gateway_config&) {}, defaults);
  }

  /// (Re)starts the gateway under test: one tcp+line listener, 2 loops, an unreachable
  /// register (the gateway must serve regardless), then `adjust` applied to the config.
  void restart(const std::function<void(gateway_config&)>& adjust,
               const listener_config& defaults = listener_config{}) {
    if (server_) {
      server_->stop();
    }
    gateway_config cfg;
    cfg.registers = {{"127.0.0.1", 1}};
    cfg.internal = {"127.0.0.1", 0};
    cfg.secret = "test-secret";
    cfg.name = "gw-test";
    cfg.threads = 2;
    cfg.listeners.push_back(parse_listener_url("tcp+line://127.0.0.1:0", defaults));
    adjust(cfg);
    server_ = std::make_unique<gateway_server>(std::move(cfg));
    server_->start();
    const auto urls = server_->bound_urls();
    line_port_ = port_of(urls[0]);
    internal_port_ = port_of(urls.back());
  }

  void TearDown() override {
    for (auto& p : peers_) {
      p->stream->close("test over");
    }
    io_.run_for(50ms);
    server_->stop();
  }

  /// One fake worker or push client linked to the gateway.
  struct fake_peer {
    std::shared_ptr<link_stream> stream;
    std::deque<Frame> frames;
    bool closed = false;
    /// As a worker keeps them: the ClientInfo frames, which complete the events behind them.
    link_clients::client_info_cache clients;
    int client_infos = 0;
    /// What the gateway's Welcome said of redelivery.
    bool gateway_redelivers = false;
  };

  /// Links another fake peer and makes it the current one.
  fake_peer& add_peer(link::v2::PeerRole role = link::v2::PEER_ROLE_WORKER) {
    EXPECT_TRUE(link_peer("test-secret", role));
    return *peers_.back();
  }

  /// Makes `p` the peer that next_frame/request talk to.
  void use(fake_peer& p) { current_ = &p; }

  /// Runs the test's loop until `done` holds or the deadline passes.
  bool run_until(const std::function<bool()>& done) {
    const auto end = std::chrono::steady_clock::now() + k_deadline;
    for (;;) {
      if (done()) {
        return true;
      }
      if (std::chrono::steady_clock::now() >= end) {
        return false;
      }
      io_.run_for(10ms);
    }
  }

  /// Connects a fake peer; returns true once Welcome (false on Reject/close).
  bool link_peer(const std::string& secret, link::v2::PeerRole role) {
    asio::ip::tcp::socket sock(io_);
    sock.connect({asio::ip::make_address("127.0.0.1"), internal_port_});
    peers_.push_back(std::make_unique<fake_peer>());
    auto* p = peers_.back().get();
    current_ = p;
    p->stream = std::make_shared<link_stream>(std::move(sock));
    p->stream->start(
        [p](Frame& f, std::string_view payload) {
          EXPECT_TRUE(link_codec::attach_payload(f, payload));
          if (f.has_client()) {
            p->clients.remember(f.client());
            ++p->client_infos;
            return;
          }
          if (f.has_event()) {
            EXPECT_TRUE(p->clients.complete(*f.mutable_event())) << "an event ahead of its info";
          }
          p->frames.push_back(f);
        },
        [p](const std::string&) { p->closed = true; });
    link_handshake::peer_side handshake(
        secret, role, "fake-worker-" + std::to_string(peers_.size()), server_->gateway_id());
    for (;;) {
      if (!run_until([&] { return !p->frames.empty() || p->closed; }) || p->frames.empty()) {
        return false;
      }
      const auto step = handshake.on_frame(p->frames.front());
      if (step.result == link_handshake::step::outcome::failed) {
        return false;  // the frame that failed it (e.g. a Reject) stays for the test to see
      }
      p->frames.pop_front();
      if (step.reply) {
        p->stream->send(*step.reply);
      }
      if (step.result == link_handshake::step::outcome::up) {
        p->stream->authenticated();
        p->gateway_redelivers = handshake.gateway_redelivers();
        return true;
      }
    }
  }

  /// First frame satisfying `pred` (others stay queued); fails the test on timeout.
  Frame next_frame(const std::function<bool(const Frame&)>& pred) {
    Frame out;
    auto& frames = current_->frames;
    const bool ok = run_until([&] {
      for (auto it = frames.begin(); it != frames.end(); ++it) {
        if (pred(*it)) {
          out = std::move(*it);
          frames.erase(it);
          return true;
        }
      }
      return false;
    });
    EXPECT_TRUE(ok) << "no matching frame within the deadline";
    return out;
  }

  Frame next_event(link::v2::EventKind kind) {
    return next_frame([kind](const Frame& f) { return f.has_event() && f.event().kind() == kind; });
  }

  /// Sends on the current peer as a real peer does: the message beside the header.
  void send_frame(Frame f) {
    const std::string payload = link_codec::detach_payload(f);
    current_->stream->send(f, payload);
  }

  void ack(const Frame& event) {
    Frame f;
    f.mutable_ack()->add_event_ids(event.event().event_id());
    send_frame(f);
  }

  void send_line(asio::ip::tcp::socket& client, const std::string& text) {
    asio::write(client, asio::buffer(text + "\n"));
  }

  link::v2::Reply request(link::v2::Command cmd) {
    cmd.set_request_id(++request_id_);
    Frame f;
    *f.mutable_command() = std::move(cmd);
    send_frame(f);
    const auto id = request_id_;
    return next_frame(
               [id](const Frame& fr) { return fr.has_reply() && fr.reply().request_id() == id; })
        .reply();
  }

  link::v2::Reply query(link::v2::QueryKind kind, std::vector<std::string> ids = {},
                        std::vector<std::string> groups = {}) {
    link::v2::Command cmd;
    cmd.mutable_query()->set_kind(kind);
    for (auto& id : ids) {
      cmd.mutable_query()->add_client_ids(id);
    }
    for (auto& g : groups) {
      cmd.mutable_query()->add_groups(g);
    }
    return request(std::move(cmd));
  }

  asio::ip::tcp::socket connect_client() {
    asio::ip::tcp::socket s(io_);
    s.connect({asio::ip::make_address("127.0.0.1"), line_port_});
    return s;
  }

  std::string read_line(asio::ip::tcp::socket& s) {
    std::string buf;
    asio::read_until(s, asio::dynamic_buffer(buf), '\n');
    return buf.substr(0, buf.find('\n'));
  }

  asio::io_context io_;
  std::unique_ptr<gateway_server> server_;
  std::uint16_t line_port_ = 0;
  std::uint16_t internal_port_ = 0;
  std::vector<std::unique_ptr<fake_peer>> peers_;
  fake_peer* current_ = nullptr;
  std::uint64_t request_id_ = 0;
};

// The Welcome tells a worker whether the gateway redelivers what a lost link did not
// acknowledge (at-least-once, the default) or forgets events once sent (at-most-once): the
// worker skips a lost link's queued events only in the first case.
TEST_F(GatewayLinkTest, WelcomeSaysWhetherTheGatewayRedelivers) {
  EXPECT_TRUE(add_peer().gateway_redelivers);
  restart([](gateway_config& c) { c.at_most_once = true; });
  EXPECT_FALSE(add_peer().gateway_redelivers);
}

TEST_F(GatewayLinkTest, WrongSecretIsRefused) {
  EXPECT_FALSE(link_peer("not-the-secret", link::v2::PEER_ROLE_WORKER));
  ASSERT_FALSE(current_->frames.empty());
  EXPECT_TRUE(current_->frames.front().has_reject());
  EXPECT_TRUE(run_until([&] { return current_->closed; }));
}

TEST_F(GatewayLinkTest, EventsCarryContextAndCommandsReachClients) {
  ASSERT_TRUE(link_peer("test-secret", link::v2::PEER_ROLE_WORKER));
  // The worker set reaches the shards asynchronously: wait until a connect is routed.
  auto client = connect_client();
  auto connect = next_event(link::v2::EVENT_KIND_CONNECT);
  const auto id = connect.event().client().client_id();
  const auto parts = parse_client_id(id);
  ASSERT_TRUE(parts);
  EXPECT_EQ(parts->epoch, server_->epoch());
  EXPECT_EQ(connect.event().client().gateway_address(), server_->advertised());
  EXPECT_EQ(connect.event().client().remote_address(), "127.0.0.1");

  asio::write(client, asio::buffer(std::string("hello\n")));
  auto msg = next_event(link::v2::EVENT_KIND_MESSAGE);
  EXPECT_EQ(msg.event().payload(), "hello");
  EXPECT_GT(msg.event().event_id(), connect.event().event_id());
  EXPECT_EQ(msg.event().client().remote_address(), "127.0.0.1");
  EXPECT_EQ(current_->client_infos, 1);  // ahead of the CONNECT only

  link::v2::Command bind;
  bind.mutable_bind_uid()->set_client_id(id);
  bind.mutable_bind_uid()->set_uid("alice");
  EXPECT_EQ(request(bind).error(), "");
  link::v2::Command join;
  join.mutable_join_group()->set_client_id(id);
  join.mutable_join_group()->set_group("room");
  EXPECT_EQ(request(join).error(), "");
  link::v2::Command session;
  session.mutable_session_write()->set_client_id(id);
  link_entries::find_or_add(*session.mutable_session_write()->mutable_session(), "k")
      ->set_value("v");
  session.mutable_session_write()->set_writer_seq(7);
  EXPECT_EQ(request(session).error(), "");

  auto counts = query(link::v2::QUERY_KIND_CLIENT_COUNT_BY_GROUPS, {}, {"room", "empty"});
  EXPECT_EQ(link_entries::find(counts.result().counts(), "room")->value(), 1U);
  EXPECT_EQ(link_entries::find(counts.result().counts(), "empty")->value(), 0U);
  EXPECT_EQ(query(link::v2::QUERY_KIND_ALL_CLIENT_COUNT).result().count(), 1U);

  link::v2::Command push;
  push.mutable_send_to_groups()->add_groups("room");
  push.mutable_send_to_groups()->mutable_message()->set_data("to the room");
  EXPECT_EQ(request(push).error(), "");
  EXPECT_EQ(read_line(client), "to the room");

  // The next event carries the uid and the session the worker wrote, stamped with its seq.
  asio::write(client, asio::buffer(std::string("again\n")));
  auto again = next_event(link::v2::EVENT_KIND_MESSAGE);
  EXPECT_EQ(again.event().client().uid(), "alice");
  EXPECT_EQ(link_entries::find(again.event().client().session(), "k")->value(), "v");
  EXPECT_EQ(again.event().client().session_seq(), 7U);
  EXPECT_EQ(current_->client_infos, 2);  // once more: uid and session changed

  // A client_id of another epoch (a restarted gateway) is offline, never this client.
  const auto stale =
      make_client_id("127.0.0.1", internal_port_, server_->epoch() + 1, parts->connection);
  EXPECT_TRUE(query(link::v2::QUERY_KIND_IS_ONLINE, {stale}).result().client_ids().empty());
  EXPECT_EQ(query(link::v2::QUERY_KIND_IS_ONLINE, {id}).result().client_ids_size(), 1);
  link::v2::Command to_stale;
  to_stale.mutable_send_to_clients()->add_client_ids(stale);
  to_stale.mutable_send_to_clients()->mutable_message()->set_data("wrong");
  EXPECT_EQ(request(to_stale).error(), "offline");

  // Kick: final message first, then the close; the worker hears CLOSE with the last uid.
  link::v2::Command kick;
  kick.mutable_close_client()->set_client_id(id);
  kick.mutable_close_client()->mutable_final_message()->set_data("bye");
  EXPECT_EQ(request(kick).error(), "");
  EXPECT_EQ(read_line(client), "bye");
  std::error_code ec;
  char byte = 0;
  client.read_some(asio::buffer(&byte, 1), ec);
  EXPECT_EQ(ec, asio::error::eof);
  auto closed = next_event(link::v2::EVENT_KIND_CLOSE);
  EXPECT_EQ(closed.event().client().uid(), "alice");
  EXPECT_EQ(query(link::v2::QUERY_KIND_ALL_CLIENT_COUNT).result().count(), 0U);
  EXPECT_TRUE(query(link::v2::QUERY_KIND_ALL_GROUP_IDS).result().groups().empty());
}

TEST_F(GatewayLinkTest, OversizedLineClosesOnlyThatClient) {
  ASSERT_TRUE(link_peer("test-secret", link::v2::PEER_ROLE_WORKER));
  auto good = connect_client();
  const auto good_id = next_event(link::v2::EVENT_KIND_CONNECT).event().client().client_id();
  auto bad = connect_client();
  next_event(link::v2::EVENT_KIND_CONNECT);
  asio::write(bad, asio::buffer(std::string(100, 'x')));  // limit is 64
  auto closed = next_event(link::v2::EVENT_KIND_CLOSE);
  EXPECT_NE(closed.event().close_reason().find("maximum message size"), std::string::npos)
      << closed.event().close_reason();
  link::v2::Command push;
  push.mutable_send_to_clients()->add_client_ids(good_id);
  push.mutable_send_to_clients()->mutable_message()->set_data("still here");
  EXPECT_EQ(request(push).error(), "");
  EXPECT_EQ(read_line(good), "still here");
}

TEST_F(GatewayLinkTest, ClosingClientLeavesEveryGroupWhateverTheNameLength) {
  ASSERT_TRUE(link_peer("test-secret", link::v2::PEER_ROLE_WORKER));
  auto client = connect_client();
  const auto id = next_event(link::v2::EVENT_KIND_CONNECT).event().client().client_id();
  // Names past the small-string buffer once exposed a dangling reference in the close path.
  const std::vector<std::string> groups = {"a", "a-group-name-much-longer-than-fifteen-bytes",
                                           "zz-another-long-group-name-for-the-test"};
  for (const auto& g : groups) {
    link::v2::Command join;
    join.mutable_join_group()->set_client_id(id);
    join.mutable_join_group()->set_group(g);
    EXPECT_EQ(request(join).error(), "");
  }
  EXPECT_EQ(query(link::v2::QUERY_KIND_ALL_GROUP_IDS).result().groups_size(), 3);
  client.close();
  next_event(link::v2::EVENT_KIND_CLOSE);
  EXPECT_TRUE(query(link::v2::QUERY_KIND_ALL_GROUP_IDS).result().groups().empty());
  const auto counts = query(link::v2::QUERY_KIND_CLIENT_COUNT_BY_GROUPS, {}, groups);
  for (const auto& g : groups) {
    EXPECT_EQ(link_entries::find(counts.result().counts(), g)->value(), 0U) << g;
  }
}

TEST_F(GatewayLinkTest, PushClientsGetNoEvents) {
  ASSERT_TRUE(link_peer("test-secret", link::v2::PEER_ROLE_CLIENT));
  auto client = connect_client();
  asio::write(client, asio::buffer(std::string("ignored\n")));
  // Wait until the gateway has read the message, then no event may have reached this peer.
  link::v2::GatewayStats stats;
  EXPECT_TRUE(run_until([&] {
    stats = query(link::v2::QUERY_KIND_STATS).result().stats();
    return stats.messages_in() == 1;
  }));
  EXPECT_EQ(stats.clients(), 1U);
  EXPECT_EQ(stats.threads(), 2U);
  EXPECT_TRUE(stats.workers().empty());
  for (const auto& f : current_->frames) {
    EXPECT_FALSE(f.has_event());
  }
}

TEST_F(GatewayLinkTest, UnacknowledgedEventsGoToAnotherWorkerInOrderFlagged) {
  auto& first = add_peer();
  auto client = connect_client();
  auto connect = next_event(link::v2::EVENT_KIND_CONNECT);
  ack(connect);
  send_line(client, "one");
  send_line(client, "two");
  EXPECT_EQ(next_event(link::v2::EVENT_KIND_MESSAGE).event().payload(), "one");
  EXPECT_EQ(next_event(link::v2::EVENT_KIND_MESSAGE).event().payload(), "two");
  auto& second = add_peer();
  use(first);
  first.stream->close("crash");  // neither message was acknowledged
  use(second);
  const auto one = next_event(link::v2::EVENT_KIND_MESSAGE);
  const auto two = next_event(link::v2::EVENT_KIND_MESSAGE);
  EXPECT_EQ(one.event().payload(), "one");
  EXPECT_EQ(two.event().payload(), "two");
  EXPECT_TRUE(one.event().redelivered());
  EXPECT_TRUE(two.event().redelivered());
  EXPECT_LT(one.event().event_id(), two.event().event_id());
  ack(one);
  ack(two);
  // New events follow on the new worker, not redelivered; the acknowledged CONNECT was not resent.
  send_line(client, "three");
  const auto three = next_event(link::v2::EVENT_KIND_MESSAGE);
  EXPECT_EQ(three.event().payload(), "three");
  EXPECT_FALSE(three.event().redelivered());
  for (const auto& f : second.frames) {
    EXPECT_FALSE(f.has_event() && f.event().kind() == link::v2::EVENT_KIND_CONNECT);
  }
  const auto stats = query(link::v2::QUERY_KIND_STATS).result().stats();
  EXPECT_EQ(stats.events_redelivered(), 2U);
}

TEST_F(GatewayLinkTest, EventsWaitForAWorkerAndArriveInOrder) {
  auto& pusher = add_peer(link::v2::PEER_ROLE_CLIENT);
  auto client = connect_client();
  for (int i = 0; i < 5; ++i) {
    send_line(client, "m" + std::to_string(i));
  }
  use(pusher);
  EXPECT_TRUE(run_until(
      [&] { return query(link::v2::QUERY_KIND_STATS).result().stats().events_queued() == 6; }));
  add_peer();
  EXPECT_EQ(next_event(link::v2::EVENT_KIND_CONNECT).event().kind(), link::v2::EVENT_KIND_CONNECT);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(next_event(link::v2::EVENT_KIND_MESSAGE).event().payload(), "m" + std::to_string(i));
  }
}

TEST_F(GatewayLinkTest, DrainAnswersAndMovesClientsOnlyAfterTheirEventsAreAcknowledged) {
  auto& old_worker = add_peer();
  auto client = connect_client();
  ack(next_event(link::v2::EVENT_KIND_CONNECT));
  send_line(client, "before");
  const auto before = next_event(link::v2::EVENT_KIND_MESSAGE);
  auto& new_worker = add_peer();
  use(old_worker);
  Frame drain;
  drain.mutable_drain()->set_reason("upgrade");
  old_worker.stream->send(drain);
  next_frame([](const Frame& f) { return f.has_drain_ack(); });
  // "before" is still unacknowledged: "after" must wait, not overtake it on the new worker.
  send_line(client, "after");
  use(new_worker);
  EXPECT_TRUE(run_until(
      [&] { return query(link::v2::QUERY_KIND_STATS).result().stats().events_queued() == 1; }));
  for (const auto& f : new_worker.frames) {
    EXPECT_FALSE(f.has_event());
  }
  use(old_worker);
  ack(before);
  use(new_worker);
  const auto after = next_event(link::v2::EVENT_KIND_MESSAGE);
  EXPECT_EQ(after.event().payload(), "after");
  EXPECT_FALSE(after.event().redelivered());
  EXPECT_EQ(query(link::v2::QUERY_KIND_STATS).result().stats().draining_workers_size(), 1);
}

TEST_F(GatewayLinkTest, QueueBoundDropsOldestAndCounts) {
  restart([](gateway_config& cfg) {
    cfg.threads = 1;
    cfg.queue_max_events = 3;
  });
  add_peer(link::v2::PEER_ROLE_CLIENT);
  auto client = connect_client();
  for (int i = 0; i < 6; ++i) {
    send_line(client, "m" + std::to_string(i));
  }
  EXPECT_TRUE(run_until([&] {
    const auto st = query(link::v2::QUERY_KIND_STATS).result().stats();
    return st.events_queued() == 3 && st.events_dropped() == 4;  // CONNECT + m0..m5 = 7 events
  }));
  add_peer();
  for (int i = 3; i < 6; ++i) {
    EXPECT_EQ(next_event(link::v2::EVENT_KIND_MESSAGE).event().payload(), "m" + std::to_string(i));
  }
}

TEST_F(GatewayLinkTest, ShutdownSaysGoodbyeAndWaitsForTheLastAcks) {
  restart([](gateway_config& cfg) { cfg.goodbye = "bye for now"; });
  add_peer();
  auto client = connect_client();
  ack(next_event(link::v2::EVENT_KIND_CONNECT));
  // The fake worker acknowledges the CLOSE as soon as it sees it, from its own thread.
  std::thread stopper([this] { server_->stop(); });
  const auto closed = next_event(link::v2::EVENT_KIND_CLOSE);
  EXPECT_NE(closed.event().close_reason().find("shutting down"), std::string::npos);
  ack(closed);
  EXPECT_EQ(read_line(client), "bye for now");
  std::error_code ec;
  char byte = 0;
  client.read_some(asio::buffer(&byte, 1), ec);
  EXPECT_EQ(ec, asio::error::eof);
  const auto t0 = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - t0 < 3s) {
    io_.run_for(10ms);  // keep the fake worker's link serviced while the gateway waits
  }
  stopper.join();
  // New clients are refused once the gateway stopped accepting.
  asio::ip::tcp::socket late(io_);
  late.connect({asio::ip::make_address("127.0.0.1"), line_port_}, ec);
  EXPECT_TRUE(ec);
}

TEST_F(GatewayLinkTest, ShutdownEndsAtItsTimeoutWhenTheWorkerNeverAcknowledges) {
  // Each round: a worker that stays linked and silent (the test's loop does not run while
  // stop() waits), so stop() waits out shutdown_timeout and asks the loops for their count once
  // more after the deadline. That late question once answered into a promise already gone.
  for (int round = 0; round < 3; ++round) {
    restart([](gateway_config& cfg) { cfg.shutdown_timeout = 300ms; });
    add_peer();
    auto client = connect_client();
    next_event(link::v2::EVENT_KIND_CONNECT);  // never acknowledged
    const auto t0 = std::chrono::steady_clock::now();
    server_->stop();
    const auto took = std::chrono::steady_clock::now() - t0;
    EXPECT_GE(took, 300ms) << "round " << round;
    EXPECT_LT(took, 2300ms) << "round " << round;
  }
}

}  // namespace
}  // namespace gwx::gateway
