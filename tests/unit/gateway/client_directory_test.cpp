// client_directory: lookup by client_id, membership indices, sessions and every query kind,
// with fake client ports (no sockets).
#include "gateway/client_directory.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <utility>

#include "common/client_id.hpp"
#include "common/link/link_entries.hpp"
#include "tests/unit/gateway/fake_ports.hpp"

namespace gwx::gateway {
namespace {

using fakes::fake_client_port;

constexpr std::uint64_t k_epoch = 0x1234;
constexpr unsigned k_loop = 3;

std::vector<std::string> sorted(const google::protobuf::RepeatedPtrField<std::string>& list) {
  std::vector<std::string> out(list.begin(), list.end());
  std::sort(out.begin(), out.end());
  return out;
}

class ClientDirectoryTest : public ::testing::Test {
 protected:
  /// Adds a client (announced unless told otherwise) and returns it.
  client_record& add(bool announced = true) {
    const std::uint64_t connection = (++next_ << 8) | k_loop;
    auto port = std::make_shared<fake_client_port>();
    ports_.push_back(port);
    auto& c = dir_.add(connection, id_of(connection), listener_, "10.0.0.1", 5000, port);
    if (announced) {
      dir_.announce(c);
    }
    return c;
  }
  static std::string id_of(std::uint64_t connection, std::uint64_t epoch = k_epoch) {
    return make_client_id("127.0.0.1", 7800, epoch, connection);
  }
  link::v2::QueryResult query(link::v2::QueryKind kind, std::vector<std::string> client_ids = {},
                              std::vector<std::string> groups = {},
                              std::vector<std::string> uids = {}) {
    link::v2::Query q;
    q.set_kind(kind);
    q.mutable_client_ids()->Add(client_ids.begin(), client_ids.end());
    q.mutable_groups()->Add(groups.begin(), groups.end());
    q.mutable_uids()->Add(uids.begin(), uids.end());
    link::v2::QueryResult r;
    dir_.query(q, r);
    return r;
  }
  fake_client_port& port_of(const client_record& c) {
    return static_cast<fake_client_port&>(c.port());
  }

  listener_config listener_;
  client_directory dir_{k_epoch, k_loop};
  std::vector<std::shared_ptr<fake_client_port>> ports_;
  std::uint64_t next_ = 0;
};

/// Records first/last-holder transitions as "+uid.x" / "-group.y".
class recording_listener final : public membership_listener {
 public:
  void on_first_holder(key_kind kind, const std::string& name) override {
    log.push_back("+" + key(kind, name));
  }
  void on_last_holder(key_kind kind, const std::string& name) override {
    log.push_back("-" + key(kind, name));
  }
  std::vector<std::string> take() { return std::exchange(log, {}); }
  std::vector<std::string> log;

 private:
  static std::string key(key_kind kind, const std::string& name) {
    return (kind == key_kind::uid ? "uid." : "group.") + name;
  }
};

TEST_F(ClientDirectoryTest, TellsTheFirstAndLastHolderOfEachKey) {
  recording_listener rec;
  dir_.set_membership_listener(&rec);
  auto& a = add();
  auto& b = add();
  using v = std::vector<std::string>;
  dir_.bind(a, "alice");
  EXPECT_EQ(rec.take(), v{"+uid.alice"});
  dir_.bind(b, "alice");  // a second holder: no transition
  dir_.join(a, "room");
  dir_.join(b, "room");
  dir_.join(a, "room");  // already in
  EXPECT_EQ(rec.take(), v{"+group.room"});
  dir_.unbind(a);
  dir_.leave(a, "room");
  EXPECT_TRUE(rec.take().empty());
  dir_.bind(b, "bob");  // rebinding moves b from alice (last holder) to bob (first)
  EXPECT_EQ(rec.take(), (v{"-uid.alice", "+uid.bob"}));
  dir_.join(b, "other");
  EXPECT_EQ(rec.take(), v{"+group.other"});
  dir_.ungroup("other");
  EXPECT_EQ(rec.take(), v{"-group.other"});
  // Closing forgets everything the client held.
  dir_.erase(b.connection());
  auto log = rec.take();
  std::sort(log.begin(), log.end());
  EXPECT_EQ(log, (v{"-group.room", "-uid.bob"}));
}

TEST_F(ClientDirectoryTest, FindsItsClientsAndNothingElse) {
  auto& a = add();
  EXPECT_EQ(dir_.find(a.id()), &a);
  EXPECT_EQ(dir_.find_connection(a.connection()), &a);
  // The same connection under an earlier epoch (a previous run), on another loop, unknown
  // connections and garbage all resolve to "gone".
  EXPECT_EQ(dir_.find(id_of(a.connection(), k_epoch + 1)), nullptr);
  EXPECT_EQ(dir_.find(id_of((a.connection() & ~0xffULL) | (k_loop + 1))), nullptr);
  EXPECT_EQ(dir_.find(id_of((99 << 8) | k_loop)), nullptr);
  EXPECT_EQ(dir_.find("not-a-client-id"), nullptr);
  EXPECT_EQ(dir_.find(""), nullptr);
}

TEST_F(ClientDirectoryTest, OnlyAnnouncedOpenClientsAreAddressable) {
  auto& pending = add(/*announced=*/false);
  EXPECT_EQ(dir_.find(pending.id()), nullptr);
  EXPECT_EQ(dir_.find_pending(pending.id()), &pending);

  auto& deciding = add();
  port_of(deciding).state = client_state::deciding;
  EXPECT_EQ(dir_.find(deciding.id()), &deciding);

  auto& closing = add();
  port_of(closing).state = client_state::closing;
  EXPECT_EQ(dir_.find(closing.id()), nullptr);
  EXPECT_EQ(dir_.find_pending(closing.id()), &closing);
  EXPECT_EQ(dir_.addressable_count(), 1U);
  EXPECT_EQ(dir_.size(), 3U);
}

TEST_F(ClientDirectoryTest, BindsOneUidPerClientAndManyClientsPerUid) {
  auto& a = add();
  auto& b = add();
  dir_.bind(a, "alice");
  dir_.bind(b, "alice");
  ASSERT_NE(dir_.uid("alice"), nullptr);
  EXPECT_EQ(dir_.uid("alice")->size(), 2U);
  dir_.bind(a, "bob");  // rebinding moves the client
  EXPECT_EQ(a.uid(), "bob");
  EXPECT_EQ(dir_.uid("alice")->size(), 1U);
  EXPECT_EQ(dir_.uid("bob")->count(&a), 1U);
  dir_.unbind(b);
  EXPECT_EQ(dir_.uid("alice"), nullptr);
  EXPECT_TRUE(b.uid().empty());
  dir_.bind(a, "");  // an empty uid unbinds
  EXPECT_EQ(dir_.uid("bob"), nullptr);
  EXPECT_TRUE(a.uid().empty());
}

TEST_F(ClientDirectoryTest, GroupsAreSortedAndIndexed) {
  auto& a = add();
  auto& b = add();
  dir_.join(a, "zz");
  dir_.join(a, "aa");
  dir_.join(a, "aa");  // twice is once
  dir_.join(b, "aa");
  EXPECT_EQ(a.groups(), (std::vector<std::string>{"aa", "zz"}));
  EXPECT_EQ(dir_.group("aa")->size(), 2U);
  dir_.leave(a, "aa");
  dir_.leave(a, "never-joined");
  EXPECT_EQ(a.groups(), (std::vector<std::string>{"zz"}));
  EXPECT_EQ(dir_.group("aa")->size(), 1U);
  // Leaving with the client's own copy of the name is safe.
  dir_.leave(a, a.groups().front());
  EXPECT_TRUE(a.groups().empty());
  EXPECT_EQ(dir_.group("zz"), nullptr);

  dir_.join(a, "aa");
  dir_.ungroup("aa");
  EXPECT_EQ(dir_.group("aa"), nullptr);
  EXPECT_TRUE(a.groups().empty());
  EXPECT_TRUE(b.groups().empty());
}

TEST_F(ClientDirectoryTest, ForgettingMembershipAndErasingLeaveNoTraceInTheIndices) {
  auto& a = add();
  auto& b = add();
  dir_.bind(a, "alice");
  dir_.join(a, "g");
  dir_.join(b, "g");
  dir_.forget_membership(a);
  EXPECT_TRUE(a.uid().empty());
  EXPECT_TRUE(a.groups().empty());
  EXPECT_EQ(dir_.uid("alice"), nullptr);
  EXPECT_EQ(dir_.group("g")->size(), 1U);

  const auto id = b.id();
  dir_.erase(b.connection());
  EXPECT_EQ(dir_.group("g"), nullptr);
  EXPECT_EQ(dir_.find_pending(id), nullptr);
  EXPECT_EQ(dir_.size(), 1U);
}

TEST_F(ClientDirectoryTest, SessionWritesReplaceMergeEraseAndKeepTheHighestSequence) {
  auto& a = add();
  link::v2::SessionWrite w;
  link_entries::find_or_add(*w.mutable_session(), "color")->set_value("blue");
  link_entries::find_or_add(*w.mutable_session(), "size")->set_value("L");
  w.set_writer_seq(5);
  dir_.write_session(a, w);
  EXPECT_EQ(a.session(), (session_values{{"color", "blue"}, {"size", "L"}}));
  EXPECT_EQ(a.session_seq(), 5U);

  link::v2::SessionWrite merge;
  merge.set_merge(true);
  link_entries::find_or_add(*merge.mutable_session(), "color")->set_value("red");
  merge.add_erase_keys("size");
  merge.set_writer_seq(3);  // an older writer: the sequence stays
  dir_.write_session(a, merge);
  EXPECT_EQ(a.session(), (session_values{{"color", "red"}}));
  EXPECT_EQ(a.session_seq(), 5U);

  link::v2::SessionWrite replace;
  link_entries::find_or_add(*replace.mutable_session(), "only")->set_value("this");
  replace.set_writer_seq(9);
  dir_.write_session(a, replace);
  EXPECT_EQ(a.session(), (session_values{{"only", "this"}}));
  EXPECT_EQ(a.session_seq(), 9U);
}

// The session's bytes are counted as writes change them, not recounted: after any mix of
// replaces, merges, overwrites and erasures (of keys present or not) the count is exact.
TEST_F(ClientDirectoryTest, TheSessionsByteCountFollowsEveryKindOfWrite) {
  auto& a = add();
  std::mt19937 rng(7);
  const auto pick = [&](std::size_t n) {
    return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng);
  };
  for (int i = 0; i < 3000; ++i) {
    link::v2::SessionWrite w;
    w.set_merge(pick(8) != 0);
    for (auto n = pick(4); n > 0; --n) {
      link_entries::find_or_add(*w.mutable_session(), "k" + std::to_string(pick(12)))
          ->set_value(std::string(pick(40), 'v'));
    }
    for (auto n = pick(3); n > 0; --n) {
      w.add_erase_keys("k" + std::to_string(pick(12)));
    }
    ASSERT_TRUE(dir_.write_session(a, w));
    std::size_t recount = 0;
    for (const auto& [k, v] : a.session()) {
      recount += k.size() + v.size();
    }
    ASSERT_EQ(a.session_bytes(), recount) << "after write " << i;
  }
}

// Uids, groups and session keys a client chose may be any bytes: the answers that carry them
// (as values and as keys) still parse, and a key asked for twice is answered once.
TEST_F(ClientDirectoryTest, NonUtf8UidsGroupsAndSessionKeysMakeParsableAnswers) {
  const std::string uid = "u\xff";
  const std::string grp = "g\xfe\xc3(";
  auto& a = add();
  dir_.bind(a, uid);
  dir_.join(a, grp);
  link::v2::SessionWrite w;
  link_entries::find_or_add(*w.mutable_session(), "k\xff")->set_value("v\xfe");
  dir_.write_session(a, w);

  const auto reparsed = [](const link::v2::QueryResult& r) {
    link::v2::QueryResult out;
    EXPECT_TRUE(out.ParseFromString(r.SerializeAsString()));
    return out;
  };
  const auto counts =
      reparsed(query(link::v2::QUERY_KIND_CLIENT_COUNT_BY_GROUPS, {}, {grp, grp, "none"}));
  ASSERT_EQ(counts.counts_size(), 2);
  EXPECT_EQ(link_entries::find(counts.counts(), grp)->value(), 1U);
  const auto by_uid = reparsed(query(link::v2::QUERY_KIND_CLIENT_IDS_BY_UIDS, {}, {}, {uid, uid}));
  ASSERT_EQ(by_uid.clients_by_uid_size(), 1);
  EXPECT_EQ(by_uid.clients_by_uid(0).key(), uid);
  EXPECT_EQ(by_uid.clients_by_uid(0).value().values(0), a.id());
  const auto session = reparsed(query(link::v2::QUERY_KIND_SESSION, {a.id()}));
  EXPECT_EQ(link_entries::find(session.sessions().at(a.id()).values(), "k\xff")->value(), "v\xfe");
  EXPECT_EQ(sorted(reparsed(query(link::v2::QUERY_KIND_ALL_UIDS)).uids()),
            std::vector<std::string>{uid});
  EXPECT_EQ(sorted(reparsed(query(link::v2::QUERY_KIND_GROUPS_OF_CLIENT, {a.id()})).groups()),
            std::vector<std::string>{grp});
}

TEST_F(ClientDirectoryTest, AnswersEveryQueryKindFromAddressableClients) {
  auto& a = add();
  auto& b = add();
  auto& c = add();
  auto& closing = add();
  dir_.bind(a, "alice");
  dir_.bind(b, "bob");
  dir_.bind(c, "alice");
  dir_.join(a, "g1");
  dir_.join(b, "g1");
  dir_.join(b, "g2");
  link::v2::SessionWrite w;
  link_entries::find_or_add(*w.mutable_session(), "k")->set_value("v");
  dir_.write_session(b, w);
  port_of(closing).state = client_state::closing;

  using link::v2::QueryKind;
  EXPECT_EQ(query(link::v2::QUERY_KIND_ALL_CLIENT_COUNT).count(), 3U);

  const auto counts = query(link::v2::QUERY_KIND_CLIENT_COUNT_BY_GROUPS, {}, {"g1", "g2", "none"});
  EXPECT_EQ(link_entries::find(counts.counts(), "g1")->value(), 2U);
  EXPECT_EQ(link_entries::find(counts.counts(), "g2")->value(), 1U);
  EXPECT_EQ(link_entries::find(counts.counts(), "none")->value(), 0U);

  EXPECT_EQ(sorted(query(link::v2::QUERY_KIND_CLIENT_IDS_BY_GROUP, {}, {"g1"}).client_ids()),
            (std::vector<std::string>{std::min(a.id(), b.id()), std::max(a.id(), b.id())}));

  const auto sessions = query(link::v2::QUERY_KIND_CLIENT_SESSIONS_BY_GROUP, {}, {"g2"});
  ASSERT_EQ(sessions.sessions_size(), 1);
  EXPECT_EQ(link_entries::find(sessions.sessions().at(b.id()).values(), "k")->value(), "v");

  auto all = sorted(query(link::v2::QUERY_KIND_ALL_CLIENT_IDS).client_ids());
  std::vector<std::string> expected{a.id(), b.id(), c.id()};
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(all, expected);

  EXPECT_EQ(sorted(query(link::v2::QUERY_KIND_UIDS_BY_GROUP, {}, {"g1"}).uids()),
            (std::vector<std::string>{"alice", "bob"}));
  EXPECT_EQ(sorted(query(link::v2::QUERY_KIND_ALL_UIDS).uids()),
            (std::vector<std::string>{"alice", "bob"}));
  EXPECT_EQ(sorted(query(link::v2::QUERY_KIND_ALL_GROUP_IDS).groups()),
            (std::vector<std::string>{"g1", "g2"}));
  EXPECT_EQ(sorted(query(link::v2::QUERY_KIND_GROUPS_OF_CLIENT, {b.id()}).groups()),
            (std::vector<std::string>{"g1", "g2"}));
  EXPECT_EQ(link_entries::find(
                query(link::v2::QUERY_KIND_SESSION, {b.id()}).sessions().at(b.id()).values(), "k")
                ->value(),
            "v");
  EXPECT_EQ(query(link::v2::QUERY_KIND_SESSION, {closing.id()}).sessions_size(), 0);

  const auto online =
      query(link::v2::QUERY_KIND_IS_ONLINE, {a.id(), closing.id(), id_of(1 << 8, 99)});
  EXPECT_EQ(sorted(online.client_ids()), (std::vector<std::string>{a.id()}));

  const auto by_uid = query(link::v2::QUERY_KIND_CLIENT_IDS_BY_UIDS, {}, {}, {"alice", "nobody"});
  EXPECT_EQ(link_entries::find(by_uid.clients_by_uid(), "alice")->value().values_size(), 2);
  EXPECT_EQ(link_entries::find(by_uid.clients_by_uid(), "nobody"), nullptr);

  EXPECT_EQ(sorted(query(link::v2::QUERY_KIND_UID_OF_CLIENT, {c.id()}).uids()),
            (std::vector<std::string>{"alice"}));
  EXPECT_EQ(query(link::v2::QUERY_KIND_UID_OF_CLIENT, {closing.id()}).uids_size(), 0);

  const auto stats = query(link::v2::QUERY_KIND_STATS);
  EXPECT_EQ(stats.stats().clients(), 3U);
  EXPECT_EQ(sorted(stats.uids()), (std::vector<std::string>{"alice", "bob"}));
  EXPECT_EQ(sorted(stats.groups()), (std::vector<std::string>{"g1", "g2"}));
}

}  // namespace
}  // namespace gwx::gateway
