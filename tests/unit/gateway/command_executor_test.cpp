// command_executor: link commands run against a client_directory of fake client ports.
#include "gateway/command_executor.hpp"

#include <gtest/gtest.h>

#include "common/client_id.hpp"
#include "common/link/link_entries.hpp"
#include "common/metrics/registry.hpp"
#include "tests/unit/gateway/fake_ports.hpp"

namespace gwx::gateway {
namespace {

using fakes::fake_client_port;

constexpr std::uint64_t k_epoch = 0x77;

class CommandExecutorTest : public ::testing::Test {
 protected:
  CommandExecutorTest() {
    ws_.kind = framing::websocket;
    line_.kind = framing::line;
  }

  /// An open, announced client on `listener`; returns its port. The fixture keeps every port
  /// alive, as a session keeps itself alive while it sends: a port may outlive its record
  /// (a send that closes the client erases the record in the middle of the send).
  std::pair<client_record*, fake_client_port*> add(const listener_config& listener) {
    const std::uint64_t connection = ++next_ << 8;
    auto port = std::make_shared<fake_client_port>();
    ports_.push_back(port);
    auto& c = dir_.add(connection, make_client_id("127.0.0.1", 7800, k_epoch, connection), listener,
                       "10.0.0.1", 5000, port);
    dir_.announce(c);
    return {&c, port.get()};
  }
  link::v2::Reply run(const link::v2::Command& cmd) {
    link::v2::Reply reply;
    exec_.execute(cmd, reply);
    return reply;
  }
  static link::v2::Command to_clients(const std::vector<std::string>& ids,
                                      const std::string& text) {
    link::v2::Command cmd;
    auto* op = cmd.mutable_send_to_clients();
    op->mutable_client_ids()->Add(ids.begin(), ids.end());
    op->mutable_message()->set_data(text);
    return cmd;
  }

  listener_config ws_;
  listener_config line_;
  client_directory dir_{k_epoch, 0};
  int stats_calls_ = 0;
  metrics::registry registry_;
  event_metrics metrics_ = [this] {
    event_metrics m;
    m.attach(registry_);
    return m;
  }();
  command_executor exec_{dir_,
                         [this](link::v2::GatewayStats& s) {
                           ++stats_calls_;
                           s.set_messages_in(42);
                         },
                         metrics_};
  std::uint64_t next_ = 0;
  std::vector<std::shared_ptr<fake_client_port>> ports_;
};

TEST_F(CommandExecutorTest, SendsToNamedClientsAndSaysOfflineWhenNoneIsHere) {
  auto [a, pa] = add(line_);
  auto [b, pb] = add(line_);
  EXPECT_EQ(run(to_clients({a->id(), b->id()}, "hi")).error(), "");
  EXPECT_EQ(pa->texts(), std::vector<std::string>{"hi\n"});
  EXPECT_EQ(pb->texts(), std::vector<std::string>{"hi\n"});
  EXPECT_EQ(exec_.messages_out(), 2U);

  const auto stale = make_client_id("127.0.0.1", 7800, k_epoch + 1, a->connection());
  EXPECT_EQ(run(to_clients({stale}, "x")).error(), "offline");
  pa->state = client_state::closing;
  EXPECT_EQ(run(to_clients({a->id()}, "x")).error(), "offline");
  EXPECT_EQ(pa->sent.size(), 1U);
}

TEST_F(CommandExecutorTest, ANewlineIsRefusedForLineClientsNotSplit) {
  auto [a, pa] = add(line_);
  auto [b, pb] = add(ws_);
  // One recipient: refused with a reason, nothing queued.
  EXPECT_NE(run(to_clients({a->id()}, "two\nlines")).error(), "");
  EXPECT_TRUE(pa->sent.empty());
  // A final CR would be taken for the CR of a CRLF: refused too.
  EXPECT_NE(run(to_clients({a->id()}, "cr\r")).error(), "");
  EXPECT_TRUE(pa->sent.empty());
  // A broadcast: the WebSocket client gets it whole, the line client nothing.
  link::v2::Command cmd;
  cmd.mutable_send_to_all()->mutable_message()->set_data("first\nsecond");
  run(cmd);
  EXPECT_TRUE(pa->sent.empty());
  ASSERT_EQ(pb->sent.size(), 1U);
  EXPECT_EQ(exec_.messages_out(), 1U);
  // A graceful close with such a final message still closes, without it.
  link::v2::Command close;
  close.mutable_close_client()->set_client_id(a->id());
  close.mutable_close_client()->mutable_final_message()->set_data("bye\nnow");
  run(close);
  EXPECT_EQ(pa->closes, std::vector<std::string>{"graceful"});
  // Without a newline it goes through.
  auto [c, pc] = add(line_);
  EXPECT_EQ(run(to_clients({c->id()}, "one line")).error(), "");
  EXPECT_EQ(pc->texts(), std::vector<std::string>{"one line\n"});
}

TEST_F(CommandExecutorTest, TextThatIsNotUtf8IsRefusedForWebSocketClientsNotSentAsText) {
  auto [a, pa] = add(ws_);
  auto [b, pb] = add(line_);
  const std::string latin1 = "caf\xe9";  // a browser would fail the connection on this text
  // One recipient: refused with a reason, nothing queued.
  const auto reply = run(to_clients({a->id()}, latin1));
  EXPECT_NE(reply.error().find("UTF-8"), std::string::npos) << reply.error();
  EXPECT_TRUE(pa->sent.empty());
  // A broadcast: the line client gets the bytes, the WebSocket client nothing.
  link::v2::Command cmd;
  cmd.mutable_send_to_all()->mutable_message()->set_data(latin1);
  run(cmd);
  EXPECT_TRUE(pa->sent.empty());
  EXPECT_EQ(pb->texts(), std::vector<std::string>{latin1 + "\n"});
  // The same bytes as a binary message, and valid UTF-8 text, go through.
  cmd.mutable_send_to_all()->mutable_message()->set_binary(true);
  run(cmd);
  ASSERT_EQ(pa->sent.size(), 1U);
  EXPECT_EQ(*pa->sent[0], "\x82\x04" + latin1);
  EXPECT_EQ(run(to_clients({a->id()}, "caf\xc3\xa9")).error(), "");
  ASSERT_EQ(pa->sent.size(), 2U);
  EXPECT_EQ(*pa->sent[1],
            "\x81\x05"
            "caf\xc3\xa9");
  // A graceful close whose final text is not UTF-8 closes without it.
  link::v2::Command close;
  close.mutable_close_client()->set_client_id(a->id());
  close.mutable_close_client()->mutable_final_message()->set_data(latin1);
  run(close);
  EXPECT_EQ(pa->closes, std::vector<std::string>{"graceful"});
}

TEST_F(CommandExecutorTest, ABroadcastIsFramedOncePerListenerKind) {
  auto [a, pa] = add(ws_);
  auto [b, pb] = add(ws_);
  auto [c, pc] = add(line_);
  link::v2::Command cmd;
  cmd.mutable_send_to_all()->mutable_message()->set_data("all");
  run(cmd);
  ASSERT_EQ(pa->sent.size(), 1U);
  ASSERT_EQ(pb->sent.size(), 1U);
  ASSERT_EQ(pc->sent.size(), 1U);
  EXPECT_EQ(pa->sent[0].get(), pb->sent[0].get());  // the same buffer, shared
  EXPECT_EQ(*pa->sent[0], std::string("\x81\x03"
                                      "all",
                                      5));
  EXPECT_EQ(*pc->sent[0], "all\n");
  EXPECT_EQ(exec_.messages_out(), 3U);
}

TEST_F(CommandExecutorTest, SendToAllHonoursOnlyAndExclude) {
  auto [a, pa] = add(line_);
  auto [b, pb] = add(line_);
  auto [c, pc] = add(line_);
  link::v2::Command cmd;
  cmd.mutable_send_to_all()->mutable_message()->set_data("m");
  cmd.mutable_send_to_all()->add_exclude_client_ids(b->id());
  run(cmd);
  EXPECT_EQ(pa->sent.size(), 1U);
  EXPECT_TRUE(pb->sent.empty());
  EXPECT_EQ(pc->sent.size(), 1U);

  cmd.mutable_send_to_all()->add_only_client_ids(b->id());
  cmd.mutable_send_to_all()->add_only_client_ids(c->id());
  run(cmd);
  EXPECT_EQ(pa->sent.size(), 1U);
  EXPECT_TRUE(pb->sent.empty());
  EXPECT_EQ(pc->sent.size(), 2U);
}

TEST_F(CommandExecutorTest, GroupAndUidSendsReachEachMemberOnce) {
  auto [a, pa] = add(line_);
  auto [b, pb] = add(line_);
  auto [c, pc] = add(line_);
  dir_.join(*a, "g1");
  dir_.join(*a, "g2");
  dir_.join(*b, "g2");
  dir_.join(*c, "g2");
  link::v2::Command cmd;
  auto* op = cmd.mutable_send_to_groups();
  op->add_groups("g1");
  op->add_groups("g2");
  op->add_exclude_client_ids(c->id());
  op->mutable_message()->set_data("g");
  run(cmd);
  EXPECT_EQ(pa->texts(), std::vector<std::string>{"g\n"});
  EXPECT_EQ(pb->texts(), std::vector<std::string>{"g\n"});
  EXPECT_TRUE(pc->sent.empty());

  dir_.bind(*b, "bob");
  dir_.bind(*c, "bob");
  link::v2::Command to_uid;
  to_uid.mutable_send_to_uids()->add_uids("bob");
  to_uid.mutable_send_to_uids()->add_uids("nobody");
  to_uid.mutable_send_to_uids()->mutable_message()->set_data("u");
  run(to_uid);
  EXPECT_EQ(pa->sent.size(), 1U);
  EXPECT_EQ(pb->texts(), (std::vector<std::string>{"g\n", "u\n"}));
  EXPECT_EQ(pc->texts(), std::vector<std::string>{"u\n"});
}

TEST_F(CommandExecutorTest, AUidNamedTwiceReachesItsClientsOnce) {
  auto [a, pa] = add(line_);
  dir_.bind(*a, "bob");
  link::v2::Command cmd;
  cmd.mutable_send_to_uids()->add_uids("bob");
  cmd.mutable_send_to_uids()->add_uids("bob");
  cmd.mutable_send_to_uids()->mutable_message()->set_data("u");
  run(cmd);
  EXPECT_EQ(pa->texts(), std::vector<std::string>{"u\n"});
  EXPECT_EQ(exec_.messages_out(), 1U);

  // A send that closes its client frees the record (at-most-once: nothing keeps it): the
  // second naming of the uid must not reach it again (ASan: a use after free before).
  const auto connection = a->connection();
  pa->after_send = [this, pa = pa, connection] {
    pa->state = client_state::closed;
    dir_.erase(connection);
  };
  run(cmd);
  EXPECT_EQ(dir_.find_connection(connection), nullptr);
  EXPECT_EQ(pa->sent.size(), 2U);
}

// A list naming a client several times (a bus publisher's, say) reaches it once: before, each
// naming was a delivery, so one message naming a client 100,000 times filled its queue.
TEST_F(CommandExecutorTest, AClientNamedTwiceInAListGetsTheMessageOnce) {
  auto [a, pa] = add(line_);
  auto [b, pb] = add(line_);
  auto [c, pc] = add(line_);
  EXPECT_EQ(run(to_clients({a->id(), b->id(), a->id(), a->id()}, "c")).error(), "");
  EXPECT_EQ(pa->texts(), std::vector<std::string>{"c\n"});
  EXPECT_EQ(pb->texts(), std::vector<std::string>{"c\n"});

  link::v2::Command cmd;
  auto* op = cmd.mutable_send_to_all();
  op->mutable_message()->set_data("o");
  for (const auto* id : {&b->id(), &b->id(), &a->id(), &c->id(), &b->id()}) {
    op->add_only_client_ids(*id);
  }
  op->add_exclude_client_ids(a->id());
  op->add_exclude_client_ids(a->id());
  run(cmd);
  EXPECT_EQ(pa->texts(), std::vector<std::string>{"c\n"});
  EXPECT_EQ(pb->texts(), (std::vector<std::string>{"c\n", "o\n"}));
  EXPECT_EQ(pc->texts(), std::vector<std::string>{"o\n"});
  EXPECT_EQ(exec_.messages_out(), 4U);
}

TEST_F(CommandExecutorTest, MessagesDroppedBySlowClientsAreNotCounted) {
  add(line_);
  add(line_).second->answer = send_status::dropped;
  link::v2::Command cmd;
  cmd.mutable_send_to_all()->mutable_message()->set_data("m");
  run(cmd);
  EXPECT_EQ(exec_.messages_out(), 1U);
}

TEST_F(CommandExecutorTest, MembershipAndSessionCommandsChangeTheDirectory) {
  auto [a, pa] = add(line_);
  link::v2::Command bind;
  bind.mutable_bind_uid()->set_client_id(a->id());
  bind.mutable_bind_uid()->set_uid("alice");
  EXPECT_EQ(run(bind).error(), "");
  EXPECT_EQ(a->uid(), "alice");

  link::v2::Command join;
  join.mutable_join_group()->set_client_id(a->id());
  join.mutable_join_group()->set_group("g");
  run(join);
  join.mutable_join_group()->set_group("");  // an empty group is ignored
  run(join);
  EXPECT_EQ(a->groups(), std::vector<std::string>{"g"});

  link::v2::Command write;
  write.mutable_session_write()->set_client_id(a->id());
  link_entries::find_or_add(*write.mutable_session_write()->mutable_session(), "k")->set_value("v");
  write.mutable_session_write()->set_writer_seq(2);
  run(write);
  EXPECT_EQ(a->session().at("k"), "v");
  EXPECT_EQ(a->session_seq(), 2U);

  link::v2::Command ungroup;
  ungroup.mutable_ungroup()->set_group("g");
  run(ungroup);
  EXPECT_TRUE(a->groups().empty());

  link::v2::Command unbind;
  unbind.mutable_unbind_uid()->set_client_id(a->id());
  run(unbind);
  EXPECT_TRUE(a->uid().empty());

  // Writes naming a client that is not here answer "offline".
  const auto gone = make_client_id("127.0.0.1", 7800, k_epoch, 99 << 8);
  bind.mutable_bind_uid()->set_client_id(gone);
  EXPECT_EQ(run(bind).error(), "offline");
  write.mutable_session_write()->set_client_id(gone);
  EXPECT_EQ(run(write).error(), "offline");
  EXPECT_EQ(run(link::v2::Command{}).error(), "empty command");
}

// A session past what fits beside a message in one link frame made every event of its client
// break the worker's link (a 72 MB session: the link flapped, each event quarantined).
TEST_F(CommandExecutorTest, UidAndSessionWritesPastTheInfoBoundAreRefusedAndTheRestKept) {
  auto [a, pa] = add(line_);
  const auto session_write = [&](bool merge, std::uint64_t seq,
                                 std::vector<std::pair<std::string, std::string>> entries,
                                 std::vector<std::string> erase = {}) {
    link::v2::Command w;
    auto& op = *w.mutable_session_write();
    op.set_client_id(a->id());
    op.set_merge(merge);
    op.set_writer_seq(seq);
    for (auto& [k, v] : entries) {
      link_entries::find_or_add(*op.mutable_session(), k)->set_value(v);
    }
    for (auto& k : erase) {
      op.add_erase_keys(k);
    }
    return run(w).error();
  };
  const std::string half(k_max_client_info_bytes / 2, 'v');
  EXPECT_EQ(session_write(true, 1, {{"a", half}}), "");
  // Merging a second half (plus its key) would pass the bound: refused, the session kept, the
  // writer sequence still taken (the writer's next event shows it what the gateway holds).
  const auto refused = session_write(true, 2, {{"b", half}});
  EXPECT_NE(refused.find("over " + std::to_string(k_max_client_info_bytes) + " bytes"),
            std::string::npos)
      << refused;
  EXPECT_EQ(a->session(), (session_values{{"a", half}}));
  EXPECT_EQ(a->session_seq(), 2U);
  EXPECT_EQ(exec_.writes_refused(), 1U);
  // The same bytes fit once the write erases what it replaces, or replaces the whole session.
  EXPECT_EQ(session_write(true, 3, {{"b", half}}, {"a"}), "");
  EXPECT_EQ(a->session(), (session_values{{"b", half}}));
  EXPECT_EQ(session_write(false, 4, {{"c", half}, {"d", "x"}}), "");
  EXPECT_EQ(a->session().size(), 2U);

  // The uid counts with the session.
  link::v2::Command bind;
  bind.mutable_bind_uid()->set_client_id(a->id());
  bind.mutable_bind_uid()->set_uid("alice");
  EXPECT_EQ(run(bind).error(), "");
  bind.mutable_bind_uid()->set_uid(std::string(k_max_client_info_bytes / 2, 'u'));
  EXPECT_NE(run(bind).error(), "");
  EXPECT_EQ(a->uid(), "alice");
  EXPECT_EQ(dir_.uid("alice")->size(), 1U);
  EXPECT_EQ(exec_.writes_refused(), 2U);
  EXPECT_EQ(metrics_.refused_uid_session.value(), 2U);
  EXPECT_EQ(metrics_.refused_groups.value(), 0U);
  EXPECT_NE(session_write(true, 5, {{"e", std::string(k_max_client_info_bytes / 2, 'e')}}), "");
  EXPECT_EQ(a->session().count("e"), 0U);
  EXPECT_EQ(a->session_seq(), 5U);
}

// Nothing bounded one client's groups: joined to ever more groups, it grew the gateway without
// limit, and its groups are answered in one link frame.
TEST_F(CommandExecutorTest, JoinsPastAClientsGroupBoundsAreRefusedAndItsGroupsKept) {
  auto [a, pa] = add(line_);
  auto [b, pb] = add(line_);
  const auto join = [&](const client_record& c, const std::string& group) {
    link::v2::Command j;
    j.mutable_join_group()->set_client_id(c.id());
    j.mutable_join_group()->set_group(group);
    return run(j).error();
  };
  for (std::size_t i = 0; i < k_max_client_groups; ++i) {
    ASSERT_EQ(join(*a, "g" + std::to_string(i)), "") << i;
  }
  const auto refused = join(*a, "one-more");
  EXPECT_NE(refused.find(std::to_string(k_max_client_groups) + " groups"), std::string::npos)
      << refused;
  EXPECT_EQ(dir_.group("one-more"), nullptr);
  EXPECT_EQ(a->groups().size(), k_max_client_groups);
  EXPECT_EQ(exec_.writes_refused(), 1U);
  EXPECT_EQ(metrics_.refused_groups.value(), 1U);
  EXPECT_EQ(metrics_.refused_uid_session.value(), 0U);
  // A group it is in already is no new join; another client is not limited by a's groups.
  EXPECT_EQ(join(*a, "g7"), "");
  EXPECT_EQ(join(*b, "one-more"), "");
  // Leaving makes room.
  link::v2::Command leave;
  leave.mutable_leave_group()->set_client_id(a->id());
  leave.mutable_leave_group()->set_group("g7");
  run(leave);
  EXPECT_EQ(join(*a, "one-more"), "");
  EXPECT_EQ(dir_.group("one-more")->size(), 2U);

  // The names' bytes: two names of a third of the bound fit, a third name does not.
  const std::string third(k_max_client_group_bytes / 3, 'n');
  EXPECT_EQ(join(*b, third + "1"), "");
  EXPECT_EQ(join(*b, third + "2"), "");
  EXPECT_NE(join(*b, third + "3"), "");
  EXPECT_EQ(dir_.group(third + "3"), nullptr);
  EXPECT_EQ(exec_.writes_refused(), 2U);
  // Leaving (or an ungroup) gives the bytes back.
  link::v2::Command ungroup;
  ungroup.mutable_ungroup()->set_group(third + "1");
  run(ungroup);
  EXPECT_EQ(join(*b, third + "3"), "");
  EXPECT_EQ(b->groups(), (std::vector<std::string>{third + "2", third + "3", "one-more"}));
}

TEST_F(CommandExecutorTest, CloseClientFlushesOrDestroys) {
  auto [a, pa] = add(line_);
  auto [b, pb] = add(line_);
  auto [c, pc] = add(line_);
  link::v2::Command close;
  close.mutable_close_client()->set_client_id(a->id());
  run(close);
  close.mutable_close_client()->set_client_id(b->id());
  close.mutable_close_client()->mutable_final_message()->set_data("bye");
  run(close);
  close.mutable_close_client()->set_client_id(c->id());
  close.mutable_close_client()->set_immediate(true);
  run(close);
  EXPECT_EQ(pa->closes, std::vector<std::string>{"graceful"});
  EXPECT_EQ(pb->closes, std::vector<std::string>{"graceful+bye"});
  EXPECT_EQ(pc->closes, std::vector<std::string>{"destroy[server]: destroyed by a worker"});
  // Closing clients are no longer addressable.
  EXPECT_EQ(run(close).error(), "offline");
}

TEST_F(CommandExecutorTest, StatsAddTheLoopsCounters) {
  auto [a, pa] = add(line_);
  run(to_clients({a->id()}, "x"));
  link::v2::Command cmd;
  cmd.mutable_query()->set_kind(link::v2::QUERY_KIND_STATS);
  const auto reply = run(cmd);
  EXPECT_EQ(stats_calls_, 1);
  EXPECT_EQ(reply.result().stats().clients(), 1U);
  EXPECT_EQ(reply.result().stats().messages_out(), 1U);
  EXPECT_EQ(reply.result().stats().messages_in(), 42U);

  cmd.mutable_query()->set_kind(link::v2::QUERY_KIND_ALL_CLIENT_COUNT);
  EXPECT_EQ(run(cmd).result().count(), 1U);
  EXPECT_EQ(stats_calls_, 1);
}

}  // namespace
}  // namespace gwx::gateway
