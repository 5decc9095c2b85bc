// The `commands` app's language, command by command, against an in-memory cluster of two
// gateways: every reply text, every effect, and an error reply for everything malformed.
#include "worker/apps/commands_app.hpp"

#include <gtest/gtest.h>

#include "tests/unit/cluster/fake_cluster.hpp"

namespace gwx::apps {
namespace {

using fakes::fake_cluster;
using fakes::sorted;
using string_list = std::vector<std::string>;

class CommandsAppTest : public ::testing::Test, protected fakes::fake_api {
 protected:
  CommandsAppTest() : g1_(cluster->add_gateway(7001, 0xa1)), g2_(cluster->add_gateway(7002, 0xb2)) {
    a_ = cluster->connect(g1_);
    b_ = cluster->connect(g1_);
    c_ = cluster->connect(g2_);
  }

  // One command from `id`, with its session kept between commands as the SDK would.
  std::string run(const std::string& id, std::string_view line) {
    context ctx(api, client_info{id, "127.0.0.1", 40000, "127.0.0.1:7001", "ws://x/", ""},
                sessions_[id]);
    auto reply = commands_app::execute(ctx, line);
    sessions_[id] = ctx.session();
    return reply;
  }

  static std::string joined(const std::string& head, const string_list& items) {
    std::string out = head;
    for (const auto& i : items) {
      out += " " + i;
    }
    return out;
  }

  fake_cluster::gateway& g1_;
  fake_cluster::gateway& g2_;
  std::string a_;
  std::string b_;
  std::string c_;
  std::map<std::string, session_map> sessions_;
};

TEST_F(CommandsAppTest, IdAndEcho) {
  EXPECT_EQ(run(a_, "id"), "id " + a_);
  EXPECT_EQ(run(a_, "echo hello  big world "), "hello  big world ");
  EXPECT_EQ(run(a_, "echo héllo ✓"), "héllo ✓");
  EXPECT_EQ(run(a_, "echo line\r\n"), "line");
}

TEST_F(CommandsAppTest, TlsClientCertificateLandsInTheSession) {
  tls_info tls;
  tls.version = "TLSv1.3";
  tls.certificate = client_certificate{"CN=device-42,O=Fleet", {"URI:urn:dev:42", "DNS:d42"}};
  context ctx(api, client_info{a_, "127.0.0.1", 40000, "127.0.0.1:7001", "wss://x/", ""},
              sessions_[a_], false, tls);
  commands_app app;
  app.on_connect(ctx);
  sessions_[a_] = ctx.session();
  EXPECT_EQ(run(a_, "get tls_version"), "value TLSv1.3");
  EXPECT_EQ(run(a_, "get tls_subject"), "value CN=device-42,O=Fleet");
  EXPECT_EQ(run(a_, "get tls_sans"), "value URI:urn:dev:42,DNS:d42");

  // A plain client's session gets nothing.
  context plain(api, client_info{b_, "127.0.0.1", 40001, "127.0.0.1:7001", "ws://x/", ""},
                sessions_[b_]);
  app.on_connect(plain);
  EXPECT_TRUE(plain.session().empty());
}

TEST_F(CommandsAppTest, EverythingMalformedGetsAnErrorWithAReason) {
  for (const char* bad : {"",
                          "   ",
                          "frobnicate",
                          "frobnicate now please",
                          "ID",
                          "echo",
                          "join",
                          "leave",
                          "bind",
                          "get",
                          "set",
                          "set k",
                          "unset",
                          "set-session novalue",
                          "set-session =x",
                          "online",
                          "uid-online",
                          "uids-online",
                          "group-count",
                          "group-counts",
                          "uid-clients",
                          "group-clients",
                          "group-uids",
                          "group-uid-count",
                          "group-sessions",
                          "uid-of",
                          "to-client",
                          "to-client someone",
                          "to-clients",
                          "to-uid",
                          "to-uid u",
                          "to-group",
                          "to-group g",
                          "to-group-except g",
                          "to-all",
                          "to-all-except x",
                          "ungroup",
                          "kick",
                          "destroy",
                          "bind-other x",
                          "update-session"}) {
    const auto reply = run(a_, bad);
    EXPECT_EQ(reply.rfind("error ", 0), 0U) << "'" << bad << "' -> '" << reply << "'";
    EXPECT_GT(reply.size(), 6U) << bad;
  }
  EXPECT_EQ(run(a_, "echo still usable"), "still usable");
}

TEST_F(CommandsAppTest, GroupsJoinLeaveCountAndList) {
  EXPECT_EQ(run(a_, "group-count g1"), "group-count 0");
  EXPECT_EQ(run(a_, "groups"), "groups");
  EXPECT_EQ(run(a_, "join g1"), "ok");
  EXPECT_EQ(run(a_, "join g1"), "ok");
  EXPECT_EQ(run(c_, "join g1"), "ok");
  EXPECT_EQ(run(b_, "join zz"), "ok");
  EXPECT_EQ(run(c_, "join a-first"), "ok");
  EXPECT_EQ(run(b_, "group-count g1"), "group-count 2");
  EXPECT_EQ(run(b_, "group-counts g1 zz none"), "group-counts g1=2 none=0 zz=1");
  EXPECT_EQ(run(b_, "groups"), "groups a-first g1 zz");
  EXPECT_EQ(run(b_, "groups " + c_), "groups a-first g1");
  EXPECT_EQ(run(b_, "group-clients g1"), joined("group-clients", sorted({a_, c_})));
  EXPECT_EQ(run(a_, "leave g1"), "ok");
  EXPECT_EQ(run(b_, "group-count g1"), "group-count 1");
  EXPECT_EQ(run(b_, "ungroup g1"), "ok");
  EXPECT_EQ(run(b_, "group-count g1"), "group-count 0");
  EXPECT_EQ(run(b_, "groups"), "groups a-first zz");
}

TEST_F(CommandsAppTest, UidsBindUnbindAndQueries) {
  EXPECT_EQ(run(a_, "uid-online alice"), "uid-online 0");
  EXPECT_EQ(run(a_, "uid-clients alice"), "uid-clients");
  EXPECT_EQ(run(a_, "bind alice"), "ok");
  EXPECT_EQ(run(c_, "bind alice"), "ok");
  EXPECT_EQ(run(b_, "bind bob"), "ok");
  EXPECT_EQ(run(b_, "uid-online alice"), "uid-online 1");
  EXPECT_EQ(run(b_, "uids-online alice nobody"), "uids-online alice=1 nobody=0");
  EXPECT_EQ(run(b_, "uid-clients alice"), joined("uid-clients", sorted({a_, c_})));
  EXPECT_EQ(run(b_, "uid-of " + c_), "uid-of alice");
  EXPECT_EQ(run(b_, "uids"), "uids alice bob");
  EXPECT_EQ(run(b_, "uid-count"), "uid-count 2");
  EXPECT_EQ(run(a_, "join g"), "ok");
  EXPECT_EQ(run(c_, "join g"), "ok");
  EXPECT_EQ(run(b_, "group-uids g"), "group-uids alice");
  EXPECT_EQ(run(b_, "group-uid-count g"), "group-uid-count 1");
  EXPECT_EQ(run(a_, "unbind"), "ok");
  EXPECT_EQ(run(b_, "uid-clients alice"), "uid-clients " + c_);
  EXPECT_EQ(run(b_, "uid-of " + a_), "uid-of");
  EXPECT_EQ(run(b_, "bind-other " + a_ + " carol"), "ok");
  EXPECT_EQ(run(b_, "uid-of " + a_), "uid-of carol");
}

TEST_F(CommandsAppTest, PresenceAndCounts) {
  EXPECT_EQ(run(a_, "count"), "count 3");
  EXPECT_EQ(run(a_, "online " + c_), "online 1");
  EXPECT_EQ(run(a_, "online nonsense"), "online 0");
  EXPECT_EQ(run(a_, "clients"), joined("clients", sorted({a_, b_, c_})));
}

TEST_F(CommandsAppTest, PushesReachTheirRecipientsAndTheSenderGetsOk) {
  run(a_, "bind alice");
  run(c_, "bind alice");
  run(b_, "join g");
  run(c_, "join g");
  EXPECT_EQ(run(b_, "to-client " + c_ + " direct  text"), "ok");
  EXPECT_EQ(cluster->inbox(c_), string_list{"direct  text"});
  cluster->clear_inboxes();
  EXPECT_EQ(run(b_, "to-uid alice hi alice"), "ok");
  EXPECT_EQ(cluster->inbox(a_), string_list{"hi alice"});
  EXPECT_EQ(cluster->inbox(c_), string_list{"hi alice"});
  EXPECT_TRUE(cluster->inbox(b_).empty());
  cluster->clear_inboxes();
  EXPECT_EQ(run(a_, "to-group g group text"), "ok");
  EXPECT_EQ(cluster->inbox(b_), string_list{"group text"});
  EXPECT_EQ(cluster->inbox(c_), string_list{"group text"});
  EXPECT_TRUE(cluster->inbox(a_).empty());
  cluster->clear_inboxes();
  EXPECT_EQ(run(a_, "to-group-except g " + b_ + " not b"), "ok");
  EXPECT_EQ(cluster->inbox(c_), string_list{"not b"});
  EXPECT_TRUE(cluster->inbox(b_).empty());
  cluster->clear_inboxes();
  EXPECT_EQ(run(a_, "to-all everyone"), "ok");
  for (const auto& id : {a_, b_, c_}) {
    EXPECT_EQ(cluster->inbox(id), string_list{"everyone"});
  }
  cluster->clear_inboxes();
  EXPECT_EQ(run(a_, "to-all-except " + a_ + "," + c_ + " only b"), "ok");
  EXPECT_EQ(cluster->inbox(b_), string_list{"only b"});
  EXPECT_TRUE(cluster->inbox(a_).empty());
  EXPECT_TRUE(cluster->inbox(c_).empty());
  cluster->clear_inboxes();
  EXPECT_EQ(run(a_, "to-clients " + b_ + "," + c_ + " two"), "ok");
  EXPECT_EQ(cluster->inbox(b_), string_list{"two"});
  EXPECT_EQ(cluster->inbox(c_), string_list{"two"});
}

TEST_F(CommandsAppTest, SessionOfTheSenderAndOfOthers) {
  EXPECT_EQ(run(a_, "get color"), "value");
  EXPECT_EQ(run(a_, "set color dark blue"), "ok");
  EXPECT_EQ(run(a_, "set size 42"), "ok");
  EXPECT_EQ(run(a_, "get color"), "value dark blue");
  EXPECT_EQ(run(b_, "get color"), "value");
  EXPECT_EQ(run(a_, "session"), "session color=dark blue size=42");
  EXPECT_EQ(run(a_, "unset color"), "ok");
  EXPECT_EQ(run(a_, "get color"), "value");
  EXPECT_EQ(run(a_, "set-session x=1 y=2"), "ok");
  EXPECT_EQ(run(a_, "session"), "session x=1 y=2");
  EXPECT_EQ(run(a_, "set-session"), "ok");
  EXPECT_EQ(run(a_, "session"), "session");
  // Another client's session, as the gateway holds it.
  EXPECT_EQ(run(a_, "update-session " + c_ + " k=v w=z"), "ok");
  EXPECT_EQ(run(a_, "session " + c_), "session k=v w=z");
  EXPECT_EQ(run(b_, "join g"), "ok");
  EXPECT_EQ(run(c_, "join g"), "ok");
  EXPECT_EQ(run(a_, "group-sessions g"), b_ < c_
                                             ? "group-sessions " + b_ + "{} " + c_ + "{k=v,w=z}"
                                             : "group-sessions " + c_ + "{k=v,w=z} " + b_ + "{}");
  EXPECT_EQ(run(a_, "session nonsense"), "session");
}

TEST_F(CommandsAppTest, KickSendsTheTextThenCloses) {
  run(c_, "join g");
  EXPECT_EQ(run(a_, "kick " + c_ + " bye  now"), "ok");
  EXPECT_EQ(cluster->inbox(c_), string_list{"bye  now"});
  EXPECT_EQ(run(a_, "online " + c_), "online 0");
  EXPECT_EQ(run(a_, "group-count g"), "group-count 0");
  EXPECT_EQ(run(a_, "kick " + b_), "ok");
  EXPECT_TRUE(cluster->inbox(b_).empty());
  EXPECT_EQ(run(a_, "online " + b_), "online 0");
  EXPECT_EQ(run(a_, "count"), "count 1");
  const auto d = cluster->connect(g2_);
  EXPECT_EQ(run(a_, "destroy " + d), "ok");
  EXPECT_EQ(run(a_, "online " + d), "online 0");
}

TEST_F(CommandsAppTest, OnMessageRepliesToTheSender) {
  commands_app app;
  context ctx(api, client_info{b_, "127.0.0.1", 1, "127.0.0.1:7001", "ws://x/", ""}, {});
  app.on_message(ctx, message("id"));
  app.on_message(ctx, message("nope"));
  const auto inbox = cluster->inbox(b_);
  ASSERT_EQ(inbox.size(), 2U);
  EXPECT_EQ(inbox[0], "id " + b_);
  EXPECT_EQ(inbox[1].rfind("error ", 0), 0U);
  EXPECT_EQ(run(a_, "help").rfind("help ", 0), 0U);
}

TEST_F(CommandsAppTest, QueriesThatCannotRunReplyWithAnError) {
  cluster->set_network_thread(true);  // every blocking query now refuses to run
  EXPECT_EQ(run(a_, "count").rfind("error count: ", 0), 0U);
  EXPECT_EQ(run(a_, "echo fine"), "fine");
}

}  // namespace
}  // namespace gwx::apps
