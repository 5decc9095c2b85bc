// One handler thread's event handling, without threads or sockets: the session written back
// with a writer_seq and shown to events already in flight, connect decisions, acks for every
// event, and on_close skipped for refused upgrades.
#include "worker/sdk/event_runner.hpp"

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <sstream>

#include "common/link/link_entries.hpp"
#include "tests/unit/cluster/fake_cluster.hpp"

namespace gwx::sdk {
namespace {

using fakes::fake_cluster;

struct recording_sink final : event_sink {
  std::vector<link::v2::ConnectDecision> decisions;
  std::vector<std::uint64_t> acks;
  void decide(const cluster::link_ref&, link::v2::ConnectDecision d) override {
    decisions.push_back(std::move(d));
  }
  void ack(const cluster::link_ref&, std::uint64_t id) override { acks.push_back(id); }
};

// Records what it sees; "set K V" / "erase K" change the session, "throw" throws.
struct recording_handler final : handler {
  std::vector<std::string> calls;
  std::vector<session_map> sessions_seen;
  std::vector<bool> redelivered_seen;
  std::vector<client_info> infos_seen;
  std::vector<bool> tls_seen;
  connect_decision decision;
  websocket_request last_request;

  void on_connect(context& ctx) override {
    calls.push_back("connect " + ctx.client_id());
    infos_seen.push_back(ctx.info());
    tls_seen.push_back(ctx.tls().has_value());
  }
  connect_decision on_websocket_connect(context&, const websocket_request& r) override {
    calls.push_back("websocket " + r.path);
    last_request = r;
    return decision;
  }
  void on_message(context& ctx, const message& msg) override {
    calls.push_back("message " + msg.data);
    infos_seen.push_back(ctx.info());
    tls_seen.push_back(ctx.tls().has_value());
    sessions_seen.push_back(ctx.session());
    redelivered_seen.push_back(ctx.redelivered());
    if (msg.data.rfind("set ", 0) == 0) {
      const auto rest = msg.data.substr(4);
      const auto space = rest.find(' ');
      ctx.session()[rest.substr(0, space)] = rest.substr(space + 1);
    } else if (msg.data.rfind("erase ", 0) == 0) {
      ctx.session().erase(msg.data.substr(6));
    } else if (msg.data == "throw") {
      ctx.session()["never"] = "written";
      throw std::runtime_error("boom");
    } else if (msg.data.rfind("throw: ", 0) == 0) {
      throw std::runtime_error(msg.data.substr(7));  // what() carries the client's bytes
    } else if (msg.data == "throw 42") {
      ctx.session()["never"] = "written";
      throw 42;  // not a std::exception
    }
  }
  void on_close(context& ctx) override {
    calls.push_back("close " + ctx.client_id());
    sessions_seen.push_back(ctx.session());
  }
};

class EventRunnerTest : public ::testing::Test, protected fakes::fake_api {
 protected:
  EventRunnerTest()
      : gw_(cluster->add_gateway(7001, 0x51)), runner_(app_, api, *cluster, writer_seq_) {
    id_ = cluster->connect(gw_);
  }

  link::v2::ClientEvent event(link::v2::EventKind kind, std::string payload = {},
                              std::uint64_t session_seq = 0, const session_map& session = {}) {
    link::v2::ClientEvent ev;
    ev.set_event_id(++next_event_);
    ev.set_kind(kind);
    ev.set_payload(std::move(payload));
    auto* c = ev.mutable_client();
    c->set_client_id(id_);
    c->set_remote_address("10.0.0.1");
    c->set_remote_port(5000);
    c->set_gateway_address(gw_.address);
    c->set_session_seq(session_seq);
    link_entries::append(*c->mutable_session(), session);
    return ev;
  }

  void run(link::v2::ClientEvent ev) { runner_.run(link_, ev, sink_); }

  std::vector<link::v2::SessionWrite> session_writes() {
    std::vector<link::v2::SessionWrite> out;
    for (const auto& [gw, cmd] : cluster->sent()) {
      if (cmd.has_session_write()) {
        out.push_back(cmd.session_write());
      }
    }
    return out;
  }

  fake_cluster::gateway& gw_;
  recording_handler app_;
  std::atomic<std::uint64_t> writer_seq_{0};
  event_runner runner_;
  recording_sink sink_;
  cluster::link_ref link_{"gw", 1};
  std::string id_;
  std::uint64_t next_event_ = 0;
};

TEST_F(EventRunnerTest, SessionChangesAreWrittenBackAndSeenByEventsAlreadyInFlight) {
  run(event(link::v2::EVENT_KIND_MESSAGE, "set color blue", 0, {{"keep", "1"}}));
  auto writes = session_writes();
  ASSERT_EQ(writes.size(), 1U);
  EXPECT_EQ(writes[0].client_id(), id_);
  EXPECT_TRUE(writes[0].merge());
  EXPECT_EQ(writes[0].writer_seq(), 1U);
  EXPECT_EQ(writes[0].session().size(), 1U);  // only the change: others' keys stay
  EXPECT_EQ(link_entries::find(writes[0].session(), "color")->value(), "blue");
  EXPECT_EQ(cluster->find(id_)->session_seq, 1U);

  // Left the gateway before our write arrived: stamped with the old seq and old session.
  run(event(link::v2::EVENT_KIND_MESSAGE, "peek", 0, {{"keep", "1"}}));
  EXPECT_EQ(app_.sessions_seen.back(), (session_map{{"keep", "1"}, {"color", "blue"}}));
  EXPECT_EQ(runner_.pending_sessions(), 1U);

  // The gateway has it now (and someone else added a key): its session wins again.
  run(event(link::v2::EVENT_KIND_MESSAGE, "peek", 1,
            {{"keep", "1"}, {"color", "blue"}, {"other", "x"}}));
  EXPECT_EQ(app_.sessions_seen.back(),
            (session_map{{"keep", "1"}, {"color", "blue"}, {"other", "x"}}));
  EXPECT_EQ(runner_.pending_sessions(), 0U);
  EXPECT_EQ(session_writes().size(), 1U);  // reading changes nothing

  run(event(link::v2::EVENT_KIND_MESSAGE, "erase keep", 1, {{"keep", "1"}, {"color", "blue"}}));
  writes = session_writes();
  ASSERT_EQ(writes.size(), 2U);
  EXPECT_EQ(writes[1].writer_seq(), 2U);
  EXPECT_TRUE(writes[1].session().empty());
  EXPECT_EQ(writes[1].erase_keys_size(), 1);
  EXPECT_EQ(writes[1].erase_keys(0), "keep");
  EXPECT_EQ(cluster->find(id_)->session, (session_map{{"color", "blue"}}));
  EXPECT_EQ(sink_.acks, (std::vector<std::uint64_t>{1, 2, 3, 4}));
}

// The link went down before the write left (dropped: no link to send it on). The gateway
// redelivers the event on the next link with the session of before: the handler must see that
// session, not its own lost write, so that it writes again.
TEST_F(EventRunnerTest, AWriteLostWithItsLinkIsMadeAgainWhenTheEventComesBackOnTheNextLink) {
  run(event(link::v2::EVENT_KIND_MESSAGE, "set n 1", 0, {{"keep", "1"}}));
  ASSERT_EQ(session_writes().size(), 1U);
  link_ = cluster::link_ref{"gw", 2};
  auto again = event(link::v2::EVENT_KIND_MESSAGE, "set n 1", 0, {{"keep", "1"}});
  again.set_redelivered(true);
  run(std::move(again));
  EXPECT_EQ(app_.sessions_seen.back(), (session_map{{"keep", "1"}}));
  const auto writes = session_writes();
  ASSERT_EQ(writes.size(), 2U);
  ASSERT_NE(link_entries::find(writes[1].session(), "n"), nullptr);
  EXPECT_EQ(link_entries::find(writes[1].session(), "n")->value(), "1");
}

TEST_F(EventRunnerTest, LosingALinkForgetsTheWritesMadeForItsEvents) {
  run(event(link::v2::EVENT_KIND_MESSAGE, "set n 1"));
  EXPECT_EQ(runner_.pending_sessions(), 1U);
  runner_.link_lost(cluster::link_ref{"gw", 2});  // another link
  EXPECT_EQ(runner_.pending_sessions(), 1U);
  runner_.link_lost(link_);  // its gateway may be gone for good: no event would clear it
  EXPECT_EQ(runner_.pending_sessions(), 0U);
}

TEST_F(EventRunnerTest, EveryEventIsAcknowledgedEvenWhenTheHandlerThrows) {
  run(event(link::v2::EVENT_KIND_MESSAGE, "throw"));
  run(event(link::v2::EVENT_KIND_MESSAGE, "fine"));
  EXPECT_EQ(sink_.acks, (std::vector<std::uint64_t>{1, 2}));
  EXPECT_TRUE(session_writes().empty());  // a failed handler's session changes are dropped
}

// Anything a handler throws fails that event only: a thrown int used to terminate the worker.
TEST_F(EventRunnerTest, AHandlerThrowingSomethingElseThanAnExceptionFailsOnlyItsEvent) {
  run(event(link::v2::EVENT_KIND_MESSAGE, "throw 42"));
  run(event(link::v2::EVENT_KIND_MESSAGE, "fine"));
  EXPECT_EQ(sink_.acks, (std::vector<std::uint64_t>{1, 2}));
  EXPECT_TRUE(session_writes().empty());
  EXPECT_EQ(app_.calls.back(), "message fine");
}

// A client can make its handler throw on every message, with what it sent in the exception:
// one log line per interval (the others counted for the next), on one line whatever the bytes
// (escaped).
TEST_F(EventRunnerTest, HandlerFailuresAreLoggedOncePerIntervalEscaped) {
  auto lines = std::make_shared<std::ostringstream>();
  const auto previous = spdlog::default_logger();
  spdlog::set_default_logger(std::make_shared<spdlog::logger>(
      "capture", std::make_shared<spdlog::sinks::ostream_sink_st>(*lines)));
  for (int i = 0; i < 1000; ++i) {
    run(event(link::v2::EVENT_KIND_MESSAGE, "throw: bad\n2026-01-01 error FORGED LINE"));
  }
  spdlog::set_default_logger(previous);
  EXPECT_EQ(sink_.acks.size(), 1000U);
  const auto text = lines->str();
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 1) << text;
  EXPECT_NE(text.find("handler failed on event 1 of client " + id_ +
                      ": bad\\x0a2026-01-01 error FORGED LINE"),
            std::string::npos)
      << text;
}

TEST_F(EventRunnerTest, RedeliveredFlagAndClientInfoReachTheHandler) {
  auto ev = event(link::v2::EVENT_KIND_MESSAGE, "x");
  ev.set_redelivered(true);
  run(std::move(ev));
  EXPECT_EQ(app_.redelivered_seen, std::vector<bool>{true});
}

TEST_F(EventRunnerTest, RefusedUpgradeAnswersTheDecisionAndSkipsConnectAndClose) {
  app_.decision = connect_decision::reject(401, "who are you?");
  auto ev = event(link::v2::EVENT_KIND_CONNECT);
  ev.set_decision_required(true);
  ev.mutable_websocket()->set_path("/chat");
  run(std::move(ev));
  ASSERT_EQ(sink_.decisions.size(), 1U);
  EXPECT_EQ(sink_.decisions[0].event_id(), 1U);
  EXPECT_EQ(sink_.decisions[0].client_id(), id_);
  EXPECT_EQ(sink_.decisions[0].http_status(), 401U);
  EXPECT_EQ(sink_.decisions[0].body(), "who are you?");
  run(event(link::v2::EVENT_KIND_CLOSE));
  EXPECT_EQ(app_.calls, std::vector<std::string>{"websocket /chat"});
  EXPECT_EQ(sink_.acks, (std::vector<std::uint64_t>{1, 2}));
}

TEST_F(EventRunnerTest, AcceptedUpgradeAnswers101AndConnects) {
  auto ev = event(link::v2::EVENT_KIND_CONNECT);
  ev.set_decision_required(true);
  auto* ws = ev.mutable_websocket();
  ws->set_method("GET");
  ws->set_path("/ws");
  ws->set_query("a=1");
  (*ws->mutable_headers())["cookie"] = "sid=abc; theme=\"dark\"; junk";
  (*ws->mutable_headers())["user-agent"] = "test";
  run(std::move(ev));
  ASSERT_EQ(sink_.decisions.size(), 1U);
  EXPECT_EQ(sink_.decisions[0].http_status(), 101U);
  EXPECT_EQ(app_.calls, (std::vector<std::string>{"websocket /ws", "connect " + id_}));
  const auto& r = app_.last_request;
  EXPECT_EQ(r.method, "GET");
  EXPECT_EQ(r.query, "a=1");
  EXPECT_EQ(r.header("User-Agent"), "test");
  EXPECT_EQ(r.cookies, (std::map<std::string, std::string>{{"sid", "abc"}, {"theme", "dark"}}));
  EXPECT_EQ(r.remote_address, "10.0.0.1");
  EXPECT_EQ(r.remote_port, 5000);
}

// Client-chosen bytes that are not UTF-8 survive the wire both ways: the event as the worker's
// link parses it, and the session write the handler's change produces.
TEST_F(EventRunnerTest, NonUtf8BytesTravelInEventsAndSessionWrites) {
  const std::string bad = "\xff\xfe\xc3(";
  auto ev = event(link::v2::EVENT_KIND_CONNECT, {}, 0, {{"k" + bad, "v" + bad}});
  ev.mutable_client()->set_uid("u" + bad);
  ev.set_decision_required(true);
  auto* ws = ev.mutable_websocket();
  ws->set_method("GET");
  ws->set_path("/p" + bad);
  ws->set_query("q=" + bad);
  (*ws->mutable_headers())["x-bytes"] = bad;
  link::v2::Frame frame;
  *frame.mutable_event() = std::move(ev);
  link::v2::Frame parsed;
  ASSERT_TRUE(parsed.ParseFromString(frame.SerializeAsString()));
  run(std::move(*parsed.mutable_event()));
  EXPECT_EQ(app_.calls, (std::vector<std::string>{"websocket /p" + bad, "connect " + id_}));
  EXPECT_EQ(app_.last_request.query, "q=" + bad);
  EXPECT_EQ(app_.last_request.header("x-bytes"), bad);

  run(event(link::v2::EVENT_KIND_MESSAGE, "set " + bad + " " + bad, 0, {{"k" + bad, "v" + bad}}));
  EXPECT_EQ(app_.sessions_seen.back(), (session_map{{"k" + bad, "v" + bad}}));
  const auto writes = session_writes();
  ASSERT_EQ(writes.size(), 1U);
  link::v2::SessionWrite write;
  ASSERT_TRUE(write.ParseFromString(writes[0].SerializeAsString()));
  ASSERT_EQ(write.session_size(), 1);
  EXPECT_EQ(write.session(0).key(), bad);
  EXPECT_EQ(write.session(0).value(), bad);
}

TEST_F(EventRunnerTest, RefusalWithoutAWaitingGatewayClosesTheClient) {
  app_.decision = connect_decision::reject(403);
  auto ev = event(link::v2::EVENT_KIND_CONNECT);
  ev.mutable_websocket()->set_path("/");
  run(std::move(ev));
  EXPECT_TRUE(sink_.decisions.empty());
  EXPECT_EQ(cluster->find(id_), nullptr);  // closed
}

TEST_F(EventRunnerTest, PlainTcpConnectGoesStraightToOnConnect) {
  run(event(link::v2::EVENT_KIND_CONNECT));
  EXPECT_EQ(app_.calls, std::vector<std::string>{"connect " + id_});
  EXPECT_TRUE(sink_.decisions.empty());
}

TEST_F(EventRunnerTest, CloseSeesTheLastSessionAndWritesNothing) {
  run(event(link::v2::EVENT_KIND_MESSAGE, "set nick zed"));
  run(event(link::v2::EVENT_KIND_CLOSE, {}, 0, {}));  // stamped before our write landed
  EXPECT_EQ(app_.calls.back(), "close " + id_);
  EXPECT_EQ(app_.sessions_seen.back(), (session_map{{"nick", "zed"}}));
  EXPECT_EQ(runner_.pending_sessions(), 0U);
  EXPECT_EQ(session_writes().size(), 1U);
}

TEST_F(EventRunnerTest, AReusedSlotShowsEachEventOnlyItsOwnClientAndMessage) {
  // The handler pool fills the same slot again and again, and the runner reuses its context.
  client_event slot;
  auto connect = event(link::v2::EVENT_KIND_CONNECT, {}, 3, {{"nick", "al"}});
  connect.mutable_client()->set_uid("alice");
  connect.mutable_client()->set_listener("wss://0.0.0.0:443/");
  connect.mutable_tls()->set_version("TLSv1.3");
  auto info = link_clients::view_of(connect.client());
  slot.assign(link_, connect, {}, &info);
  runner_.run(slot, sink_);

  // A client the link never described: only its client_id is known.
  link::v2::ClientEvent bare;
  bare.set_event_id(++next_event_);
  bare.set_kind(link::v2::EVENT_KIND_MESSAGE);
  bare.set_client_id("someone-else");
  slot.assign(link_, bare, "a message longer than the next one", nullptr);
  runner_.run(slot, sink_);

  auto again = event(link::v2::EVENT_KIND_MESSAGE);
  info = link_clients::view_of(again.client());
  slot.assign(link_, again, "hi", &info);
  runner_.run(slot, sink_);

  EXPECT_EQ(app_.calls,
            (std::vector<std::string>{"connect " + id_,
                                      "message a message longer than the next one", "message hi"}));
  ASSERT_EQ(app_.infos_seen.size(), 3U);
  EXPECT_EQ(app_.infos_seen[0].uid, "alice");
  EXPECT_EQ(app_.infos_seen[0].listener, "wss://0.0.0.0:443/");
  EXPECT_EQ(app_.infos_seen[0].remote_port, 5000);
  EXPECT_EQ(app_.infos_seen[1].client_id, "someone-else");
  EXPECT_EQ(app_.infos_seen[1].uid, "");
  EXPECT_EQ(app_.infos_seen[1].remote_address, "");
  EXPECT_EQ(app_.infos_seen[1].remote_port, 0);
  EXPECT_EQ(app_.infos_seen[1].listener, "");
  EXPECT_EQ(app_.infos_seen[2].client_id, id_);
  EXPECT_EQ(app_.infos_seen[2].uid, "");
  EXPECT_EQ(app_.infos_seen[2].remote_address, "10.0.0.1");
  EXPECT_EQ(app_.tls_seen, (std::vector<bool>{true, false, false}));
  EXPECT_EQ(app_.sessions_seen, (std::vector<session_map>{{}, {}}));
  EXPECT_EQ(sink_.acks, (std::vector<std::uint64_t>{1, 2, 3}));
}

TEST(SessionDiffTest, EqualSessionsNeedNoWrite) {
  EXPECT_FALSE(session_diff("c", {{"a", "1"}}, {{"a", "1"}}).has_value());
  const auto w = session_diff("c", {{"a", "1"}, {"b", "2"}}, {{"a", "9"}, {"c", "3"}});
  ASSERT_TRUE(w.has_value());
  EXPECT_EQ(w->session().size(), 2U);
  EXPECT_EQ(link_entries::find(w->session(), "a")->value(), "9");
  EXPECT_EQ(link_entries::find(w->session(), "c")->value(), "3");
  ASSERT_EQ(w->erase_keys_size(), 1);
  EXPECT_EQ(w->erase_keys(0), "b");
}

TEST(CookieTest, ParsesPairsAndSkipsJunk) {
  EXPECT_EQ(parse_cookie_header("a=1;b = 2 ; =x; c; d=\"q\"; e="),
            (std::map<std::string, std::string>{{"a", "1"}, {"b", "2"}, {"d", "q"}, {"e", ""}}));
  EXPECT_TRUE(parse_cookie_header("").empty());
}

}  // namespace
}  // namespace gwx::sdk
