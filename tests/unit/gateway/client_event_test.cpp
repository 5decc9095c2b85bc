// client_event: the MESSAGE event's header, written by hand, is byte for byte what protobuf
// writes for the same ClientEvent, and the worker's parser reads it back; events name their
// client by id, the ClientInfo frame and a CLOSE say who it is.
#include "gateway/client_event.hpp"

#include <gtest/gtest.h>

#include "common/client_id.hpp"
#include "common/link/link_codec.hpp"
#include "common/link/link_entries.hpp"
#include "gateway/client_directory.hpp"
#include "tests/unit/gateway/fake_ports.hpp"

namespace gwx::gateway {
namespace {

constexpr std::uint64_t k_epoch = 0x1234;
constexpr unsigned k_loop = 1;
const std::string k_gateway = "127.0.0.1:7800";

class ClientEventTest : public ::testing::Test {
 protected:
  client_record& add(std::uint16_t remote_port) {
    const std::uint64_t connection = (7ULL << 8) | k_loop;
    listener_.bound_url = "ws://127.0.0.1:8080/chat";
    return dir_.add(connection, make_client_id("127.0.0.1", 7800, k_epoch, connection), listener_,
                    "10.1.2.3", remote_port, std::make_shared<fakes::fake_client_port>());
  }

  /// What protobuf writes for the same event.
  static std::string expected(const client_record& c, std::uint64_t id, std::string_view payload,
                              bool binary) {
    link::v2::Frame f;
    auto* ev = f.mutable_event();
    ev->set_event_id(id);
    ev->set_kind(link::v2::EVENT_KIND_MESSAGE);
    ev->set_client_id(c.id());
    ev->set_binary(binary);
    ev->set_redelivered(false);
    std::string out;
    link_codec::encode(out, f, payload);
    return out;
  }

  listener_config listener_;
  client_directory dir_{k_epoch, k_loop};
};

TEST_F(ClientEventTest, BareClientAsProtobufWritesIt) {
  auto& c = add(0);  // a zero port is left out, as protobuf does
  const auto e = make_message_event(c, 0x0102030405ULL, "hello", false);
  EXPECT_EQ(e->wire, expected(c, 0x0102030405ULL, "hello", false));
  EXPECT_FALSE(is_redelivered(e));
}

// A MESSAGE event is recycled once nobody holds it: the next one has only its own bytes, none
// left over from a longer one before it.
TEST_F(ClientEventTest, RecycledEventHoldsOnlyItsOwnBytes) {
  auto& c = add(4242);
  const std::string long_payload(300, 'L');
  const void* first = nullptr;
  {
    const auto e = make_message_event(c, 1, long_payload, true);
    first = e.get();
    EXPECT_EQ(e->wire, expected(c, 1, long_payload, true));
  }
  const auto e = make_message_event(c, 2, "short", false);
  EXPECT_EQ(e.get(), first);  // the same event, reused
  EXPECT_EQ(e->id, 2U);
  EXPECT_FALSE(e->carries_info);
  EXPECT_EQ(e->wire, expected(c, 2, "short", false));
}

TEST_F(ClientEventTest, UidSessionBinaryAndLongFieldsAsProtobufWritesThem) {
  auto& c = add(54321);
  dir_.bind(c, std::string("dev\xff\x00ice", 9));  // any bytes, not UTF-8
  link::v2::SessionWrite w;
  w.set_writer_seq(300);  // a two-byte varint
  auto* a = w.add_session();
  a->set_key("nick");
  a->set_value(std::string(200, 'n'));  // a two-byte length
  auto* b = w.add_session();
  b->set_key("empty");  // an empty value is left out of its entry
  dir_.write_session(c, w);
  const std::string payload(70000, '\x01');  // a three-byte length (not in the header)
  const auto e = make_message_event(c, 99, payload, true);
  EXPECT_EQ(e->wire, expected(c, 99, payload, true));

  // Read back as the worker does, then flagged in place.
  link::v2::Frame f;
  const auto r = link_codec::decode(e->wire, link_codec::limits{}, f);
  ASSERT_EQ(r.status, codec::decode_status::message);
  EXPECT_EQ(r.payload, payload);
  EXPECT_EQ(f.event().client_id(), c.id());
  EXPECT_FALSE(f.event().has_client());  // who the client is travels apart
  EXPECT_TRUE(f.event().binary());
  const auto again = redelivered_copy(e);
  EXPECT_TRUE(is_redelivered(again));
  ASSERT_EQ(link_codec::decode(again->wire, link_codec::limits{}, f).status,
            codec::decode_status::message);
  EXPECT_TRUE(f.event().redelivered());
}

TEST_F(ClientEventTest, AnEventPastTheDefaultFrameLimitIsFlaggedInItsHeader) {
  // A frame past the decoder's default limit (a message near the largest allowed, with a
  // session beside it): the flag is still found from the prefix, and the prefix left intact.
  auto& c = add(2222);
  const std::string payload(link_codec::limits{}.max_frame, 'p');
  const auto e = make_message_event(c, 5, payload, true);
  ASSERT_GT(e->wire.size(), link_codec::limits{}.max_frame);
  EXPECT_FALSE(is_redelivered(e));
  const auto again = redelivered_copy(e);
  EXPECT_TRUE(is_redelivered(again));
  const link_codec::limits roomy{2 * link_codec::limits{}.max_frame,
                                 link_codec::limits{}.max_header};
  link::v2::Frame f;
  const auto r = link_codec::decode(again->wire, roomy, f);
  ASSERT_EQ(r.status, codec::decode_status::message);
  EXPECT_TRUE(f.event().redelivered());
  EXPECT_EQ(r.payload.size(), payload.size());
}

TEST_F(ClientEventTest, TheClientInfoFrameSaysWhoTheClientIsNow) {
  auto& c = add(54321);
  dir_.bind(c, "alice");
  link::v2::SessionWrite w;
  w.set_writer_seq(7);
  auto* e = w.add_session();
  e->set_key("nick");
  e->set_value("al");
  dir_.write_session(c, w);
  const auto frame = make_client_info(c, k_gateway);
  EXPECT_EQ(event_id_of(frame), 0U);
  link::v2::Frame f;
  ASSERT_EQ(link_codec::decode(frame->wire, link_codec::limits{}, f).status,
            codec::decode_status::message);
  ASSERT_TRUE(f.has_client());
  const auto& info = f.client();
  EXPECT_EQ(info.client_id(), c.id());
  EXPECT_EQ(info.remote_address(), "10.1.2.3");
  EXPECT_EQ(info.remote_port(), 54321U);
  EXPECT_EQ(info.gateway_address(), k_gateway);
  EXPECT_EQ(info.listener(), "ws://127.0.0.1:8080/chat");
  EXPECT_EQ(info.uid(), "alice");
  ASSERT_EQ(info.session_size(), 1);
  EXPECT_EQ(info.session(0).value(), "al");
  EXPECT_EQ(info.session_seq(), 7U);
}

TEST_F(ClientEventTest, ConnectNamesItsClientAndCloseCarriesItsInfo) {
  auto& c = add(4000);
  dir_.bind(c, "bob");
  link::v2::Frame f;
  const auto connect = make_connect_event(c, 1, nullptr, false);
  EXPECT_FALSE(connect->carries_info);
  ASSERT_EQ(link_codec::decode(connect->wire, link_codec::limits{}, f).status,
            codec::decode_status::message);
  EXPECT_EQ(f.event().client_id(), c.id());
  EXPECT_FALSE(f.event().has_client());

  const auto close = make_close_event(c, 2, k_gateway, "bye");
  EXPECT_TRUE(close->carries_info);
  ASSERT_EQ(link_codec::decode(close->wire, link_codec::limits{}, f).status,
            codec::decode_status::message);
  EXPECT_EQ(f.event().client_id(), c.id());
  EXPECT_EQ(f.event().client().uid(), "bob");
  EXPECT_EQ(f.event().client().remote_port(), 4000U);
  EXPECT_EQ(f.event().close_reason(), "bye");
  // The scratch header is reused: an event built after a CLOSE carries no leftover info.
  const auto again = make_connect_event(c, 3, nullptr, false);
  ASSERT_EQ(link_codec::decode(again->wire, link_codec::limits{}, f).status,
            codec::decode_status::message);
  EXPECT_FALSE(f.event().has_client());
  // Flagged in place like any event.
  EXPECT_TRUE(is_redelivered(redelivered_copy(close)));
}

}  // namespace
}  // namespace gwx::gateway
