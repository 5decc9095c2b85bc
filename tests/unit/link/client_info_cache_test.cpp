// client_info_cache: what a worker knows of a link's clients — filled by ClientInfo frames and
// by the info a CLOSE carries, shown with events that name their client by id only, replaced
// when the gateway sends it again, dropped on CLOSE and when the link goes away.
#include "common/link/client_info_cache.hpp"

#include <gtest/gtest.h>

#include "common/client_id.hpp"

namespace gwx::link_clients {
namespace {

constexpr std::uint64_t k_epoch = 0x77;

std::string id_of(std::uint64_t connection) {
  return make_client_id("127.0.0.1", 7800, k_epoch, connection);
}

link::v2::ClientInfo info_of(std::uint64_t connection, const std::string& uid = "") {
  link::v2::ClientInfo info;
  info.set_client_id(id_of(connection));
  info.set_remote_address("10.0.0." + std::to_string(connection % 250));
  info.set_remote_port(static_cast<std::uint32_t>(40000 + connection));
  info.set_gateway_address("127.0.0.1:7800");
  info.set_listener("ws://0.0.0.0:8080/");
  info.set_uid(uid);
  return info;
}

link::v2::ClientEvent event_of(std::uint64_t connection,
                               link::v2::EventKind kind = link::v2::EVENT_KIND_MESSAGE) {
  link::v2::ClientEvent e;
  e.set_event_id(connection * 10);
  e.set_kind(kind);
  e.set_client_id(id_of(connection));
  return e;
}

link::v2::ClientInfo info_from(const client_view& v) {
  link::v2::ClientInfo info;
  info.set_client_id(std::string(v.client_id));
  info.set_remote_address(std::string(v.remote_address));
  info.set_remote_port(v.remote_port);
  info.set_gateway_address(std::string(v.gateway_address));
  info.set_listener(std::string(v.listener));
  info.set_uid(std::string(v.uid));
  if (v.session != nullptr) {
    *info.mutable_session() = *v.session;
  }
  info.set_session_seq(v.session_seq);
  return info;
}

/// The event as the handler gets it; view() (what a worker uses) must show the same.
link::v2::ClientInfo completed(client_info_cache& cache, link::v2::ClientEvent e,
                               bool expect_known = true) {
  const auto view = cache.view(e);
  EXPECT_EQ(view.has_value(), expect_known);
  const auto from_view = view ? info_from(*view) : link::v2::ClientInfo();
  EXPECT_EQ(cache.complete(e), expect_known);
  if (view) {
    EXPECT_EQ(from_view.SerializeAsString(), e.client().SerializeAsString());
  }
  return e.client();
}

TEST(ClientInfoCache, AnEventGetsTheInfoItsClientLastHad) {
  client_info_cache cache;
  cache.remember(info_of(1));
  cache.remember(info_of(2, "bob"));
  for (int i = 0; i < 3; ++i) {
    const auto got = completed(cache, event_of(1));
    EXPECT_EQ(got.SerializeAsString(), info_of(1).SerializeAsString());
  }
  const auto got = completed(cache, event_of(2));
  EXPECT_EQ(got.SerializeAsString(), info_of(2, "bob").SerializeAsString());
  EXPECT_EQ(cache.size(), 2U);
}

TEST(ClientInfoCache, ANewInfoReplacesTheOldOneWhole) {
  client_info_cache cache;
  auto first = info_of(1, "alice");
  auto* s = first.add_session();
  s->set_key("nick");
  s->set_value("al");
  first.set_session_seq(5);
  cache.remember(first);
  EXPECT_EQ(completed(cache, event_of(1)).SerializeAsString(), first.SerializeAsString());

  auto second = info_of(1);  // uid unbound, session emptied by another writer
  second.set_session_seq(9);
  cache.remember(second);
  const auto got = completed(cache, event_of(1));
  EXPECT_TRUE(got.uid().empty());
  EXPECT_EQ(got.session_size(), 0);
  EXPECT_EQ(got.session_seq(), 9U);
  EXPECT_EQ(cache.size(), 1U);
}

TEST(ClientInfoCache, LongAddressesAndClientChosenBytesSurvive) {
  client_info_cache cache;
  auto info = info_of(3, std::string("u\xff\0v", 4));
  info.set_remote_address("2001:db8:85a3::8a2e:370:7334");
  info.set_listener("wss://[::]:443/very/long/path");
  info.set_remote_port(65535);
  auto* s = info.add_session();
  s->set_key(std::string("\x80k", 2));
  s->set_value(std::string(300, '\0'));
  cache.remember(info);
  EXPECT_EQ(completed(cache, event_of(3)).SerializeAsString(), info.SerializeAsString());
}

TEST(ClientInfoCache, ACloseUsesTheInfoItCarriesAndForgetsTheClient) {
  client_info_cache cache;
  cache.remember(info_of(1, "old"));
  cache.remember(info_of(2));
  auto close = event_of(1, link::v2::EVENT_KIND_CLOSE);
  *close.mutable_client() = info_of(1, "last");
  EXPECT_EQ(completed(cache, close).uid(), "last");
  EXPECT_EQ(cache.size(), 1U);
  // A CLOSE without info (a gateway that sent it ahead) is completed, then forgotten too.
  EXPECT_EQ(completed(cache, event_of(2, link::v2::EVENT_KIND_CLOSE)).remote_port(), 40002U);
  EXPECT_EQ(cache.size(), 0U);
  // Gone: a later event (none should come) gets only its client_id.
  const auto got = completed(cache, event_of(2), false);
  EXPECT_EQ(got.client_id(), id_of(2));
  EXPECT_TRUE(got.remote_address().empty());
}

TEST(ClientInfoCache, AViewOfACloseStaysValidUntilForgetClosed) {
  client_info_cache cache;
  cache.remember(info_of(1, "dave"));
  cache.remember(info_of(2));
  const auto close = event_of(1, link::v2::EVENT_KIND_CLOSE);
  const auto view = cache.view(close);
  ASSERT_TRUE(view.has_value());
  EXPECT_EQ(view->uid, "dave");
  EXPECT_EQ(cache.size(), 2U);
  cache.forget_closed(event_of(2));  // not a CLOSE: nothing forgotten
  EXPECT_EQ(cache.size(), 2U);
  cache.forget_closed(close);
  EXPECT_EQ(cache.size(), 1U);
  EXPECT_FALSE(cache.view(event_of(1)).has_value());
  EXPECT_TRUE(cache.view(event_of(2)).has_value());
}

TEST(ClientInfoCache, AnEventThatCarriesInfoUpdatesIt) {
  client_info_cache cache;
  link::v2::ClientEvent connect = event_of(4, link::v2::EVENT_KIND_CONNECT);
  connect.clear_client_id();  // only inside the info, as an older sender writes it
  *connect.mutable_client() = info_of(4, "carol");
  EXPECT_TRUE(cache.complete(connect));
  EXPECT_EQ(connect.client_id(), id_of(4));
  EXPECT_EQ(completed(cache, event_of(4)).uid(), "carol");
}

TEST(ClientInfoCache, ClearForgetsEveryClientAndUnknownIdsAreIgnored) {
  client_info_cache cache;
  for (std::uint64_t c = 1; c <= 100; ++c) {
    cache.remember(info_of(c));
  }
  auto bad = info_of(1);
  bad.set_client_id("not-a-client-id");
  cache.remember(bad);
  EXPECT_EQ(cache.size(), 100U);
  cache.clear();
  EXPECT_EQ(cache.size(), 0U);
  EXPECT_TRUE(completed(cache, event_of(5), false).listener().empty());
  auto stray = event_of(5);
  stray.set_client_id("nonsense");
  EXPECT_FALSE(cache.complete(stray));
  EXPECT_EQ(stray.client().client_id(), "nonsense");
}

}  // namespace
}  // namespace gwx::link_clients
