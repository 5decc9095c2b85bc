#include "common/link/link_codec.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/link/link_entries.hpp"

namespace gwx::link_codec {
namespace {

using codec::decode_status;

link::v2::Frame event_frame(std::uint64_t id) {
  link::v2::Frame f;
  auto* ev = f.mutable_event();
  ev->set_event_id(id);
  ev->set_kind(link::v2::EVENT_KIND_MESSAGE);
  ev->mutable_client()->set_client_id("c-" + std::to_string(id));
  ev->set_redelivered(false);
  return f;
}

std::string encoded(const link::v2::Frame& f, std::string_view payload) {
  std::string out;
  encode(out, f, payload);
  return out;
}

// Decodes everything in `in`, in pieces cut at `cut`, as a session would.
struct collected {
  std::vector<std::pair<std::uint64_t, std::string>> frames;
  std::string error;
};

collected decode_all(const std::string& in, std::size_t cut, const limits& lim) {
  collected out;
  std::string buf;
  std::size_t fed = 0;
  const std::size_t parts[2] = {cut, in.size()};
  for (const auto end : parts) {
    buf.append(in, fed, end - fed);
    fed = end;
    while (true) {
      link::v2::Frame f;
      const auto r = decode(buf, lim, f);
      if (r.status == decode_status::need_more) {
        break;
      }
      if (r.status == decode_status::error) {
        out.error = r.reason;
        return out;
      }
      out.frames.emplace_back(f.event().event_id(), std::string(r.payload));
      buf.erase(0, r.consumed);
    }
  }
  return out;
}

TEST(link_codec, frame_round_trips_with_raw_payload) {
  const auto bytes = encoded(event_frame(7), "hello");
  link::v2::Frame f;
  const auto r = decode(bytes, limits{}, f);
  ASSERT_EQ(r.status, decode_status::message);
  EXPECT_EQ(r.consumed, bytes.size());
  EXPECT_EQ(r.payload, "hello");
  EXPECT_EQ(f.event().event_id(), 7U);
  EXPECT_TRUE(f.event().payload().empty()) << "the payload is not inside the header";
  EXPECT_EQ(encoded_size(event_frame(7), 5), bytes.size());
}

TEST(link_codec, a_reused_frame_holds_exactly_the_last_header_decoded) {
  // One Frame decodes a whole stream, as a link does: nothing of an earlier frame may remain.
  link::v2::Frame full = event_frame(1);
  auto* ev = full.mutable_event();
  ev->set_kind(link::v2::EVENT_KIND_CONNECT);
  ev->set_client_id("c-1");
  ev->mutable_client()->set_uid("alice");
  ev->mutable_websocket()->set_path("/chat");
  ev->mutable_tls()->set_version("TLSv1.3");
  ev->set_decision_required(true);
  ev->set_close_reason("r");
  ev->set_redelivered(true);
  link::v2::Frame bare;
  bare.mutable_event()->set_event_id(2);
  bare.mutable_event()->set_client_id("c-2");
  link::v2::Frame ping;
  ping.mutable_ping()->set_seq(9);
  const std::vector<link::v2::Frame> sequence = {full, bare, full, ping, bare, full, bare};
  link::v2::Frame f;
  for (const auto& sent : sequence) {
    const auto bytes = encoded(sent, "");
    ASSERT_EQ(decode(bytes, limits{}, f).status, decode_status::message);
    EXPECT_EQ(f.SerializeAsString(), sent.SerializeAsString());
    EXPECT_EQ(f.body_case(), sent.body_case());
  }
  EXPECT_FALSE(f.event().has_client());
}

TEST(link_codec, a_reused_frame_holds_exactly_the_last_command_decoded) {
  // The gateway decodes a worker's commands into one Frame; a send_to_clients after another
  // reuses the parts of the last one, and nothing of any earlier command may remain.
  auto send = [](std::uint64_t request_id, std::vector<std::string> ids, bool with_message) {
    link::v2::Frame f;
    auto* c = f.mutable_command();
    c->set_request_id(request_id);
    auto* s = c->mutable_send_to_clients();
    for (auto& id : ids) {
      s->add_client_ids(id);
    }
    if (with_message) {
      s->mutable_message()->set_binary(true);
    }
    return f;
  };
  const auto two = send(5, {"client-one", "client-two"}, true);
  const auto one = send(0, {"c"}, false);
  const auto big_id = send(300, {std::string(200, 'x')}, true);
  link::v2::Frame bind;
  bind.mutable_command()->mutable_bind_uid()->set_uid("alice");
  link::v2::Frame no_op;  // a command without an operation: it must not read as a send
  no_op.mutable_command()->set_request_id(9);
  link::v2::Frame empty_send;
  empty_send.mutable_command()->mutable_send_to_clients();
  const std::vector<link::v2::Frame> sequence = {
      two, one, big_id, one, bind, two, no_op, two, empty_send, two, event_frame(3), one, big_id};
  link::v2::Frame f;
  for (std::size_t i = 0; i < sequence.size(); ++i) {
    const auto& sent = sequence[i];
    const auto bytes = encoded(sent, "payload");
    const auto r = decode(bytes, limits{}, f);
    ASSERT_EQ(r.status, decode_status::message) << "frame " << i;
    EXPECT_EQ(r.payload, "payload");
    EXPECT_EQ(f.SerializeAsString(), sent.SerializeAsString()) << "frame " << i;
    EXPECT_EQ(f.command().op_case(), sent.command().op_case()) << "frame " << i;
    EXPECT_EQ(f.command().send_to_clients().has_message(),
              sent.command().send_to_clients().has_message())
        << "frame " << i;
  }
}

TEST(link_codec, every_split_of_several_frames_decodes_the_same) {
  std::string stream;
  for (std::uint64_t i = 1; i <= 3; ++i) {
    stream += encoded(event_frame(i), std::string(i * 10, static_cast<char>('a' + i)));
  }
  stream += encoded(event_frame(4), "");
  for (std::size_t cut = 0; cut <= stream.size(); ++cut) {
    const auto got = decode_all(stream, cut, limits{});
    ASSERT_TRUE(got.error.empty()) << "cut " << cut << ": " << got.error;
    ASSERT_EQ(got.frames.size(), 4U) << "cut " << cut;
    EXPECT_EQ(got.frames[0].second, std::string(10, 'b'));
    EXPECT_EQ(got.frames[2].second, std::string(30, 'd'));
    EXPECT_EQ(got.frames[3].first, 4U);
    EXPECT_TRUE(got.frames[3].second.empty());
  }
}

TEST(link_codec, exactly_max_frame_accepted_and_one_more_refused) {
  const auto f = event_frame(1);
  const std::size_t header = f.ByteSizeLong();
  const std::size_t max = 100;
  const std::string fits = encoded(f, std::string(max - header, 'x'));
  const std::string over = encoded(f, std::string(max - header + 1, 'x'));
  const limits lim{max, max};
  EXPECT_EQ(decode(fits, lim).status, decode_status::message);
  const auto r = decode(over, lim);
  EXPECT_EQ(r.status, decode_status::error);
  EXPECT_STREQ(r.reason, "link frame larger than the limit");
  // Refused from the 8-byte prefix alone, before the rest arrived (nothing allocated for it).
  EXPECT_EQ(decode(std::string_view(over).substr(0, k_prefix_size), lim).status,
            decode_status::error);
}

TEST(link_codec, header_limit_is_separate) {
  const auto bytes = encoded(event_frame(1), "");
  const std::size_t header = event_frame(1).ByteSizeLong();
  EXPECT_EQ(decode(bytes, limits{1000, header}).status, decode_status::message);
  EXPECT_EQ(decode(bytes, limits{1000, header - 1}).status, decode_status::error);
}

TEST(link_codec, broken_prefixes_and_headers_are_errors) {
  // header longer than the frame
  std::string bad("\0\0\0\x04\0\0\0\x05xxxx", 12);
  EXPECT_STREQ(decode(bad, limits{}).reason, "link frame header longer than the frame");
  // no header at all
  std::string empty_header("\0\0\0\x02\0\0\0\0xx", 10);
  EXPECT_STREQ(decode(empty_header, limits{}).reason, "link frame without a header");
  // a header that is not a Frame
  std::string junk("\0\0\0\x03\0\0\0\x03\xff\xff\xff", 11);
  link::v2::Frame f;
  EXPECT_STREQ(decode(junk, limits{}, f).reason, "malformed link frame header");
}

TEST(link_codec, handshake_limits_are_tiny) {
  const auto bytes = encoded(event_frame(1), std::string(5000, 'x'));
  EXPECT_EQ(decode(bytes, k_handshake_limits).status, decode_status::error);
}

TEST(link_codec, preamble_checks_version_at_every_split) {
  const std::string p(preamble());
  ASSERT_EQ(p.size(), k_preamble_size);
  for (std::size_t n = 0; n < p.size(); ++n) {
    EXPECT_EQ(check_preamble(p.substr(0, n)).status, decode_status::need_more) << n;
  }
  const auto ok = check_preamble(p + "rest");
  EXPECT_EQ(ok.status, decode_status::message);
  EXPECT_EQ(ok.consumed, k_preamble_size);

  std::string newer = p;
  newer[7] = 3;
  EXPECT_STREQ(check_preamble(newer).reason, "the peer speaks a newer gwx link protocol");
  std::string older = p;
  older[7] = 1;
  EXPECT_STREQ(check_preamble(older).reason, "the peer speaks an older gwx link protocol");
  // A version-1 peer starts with a length prefix: refused at the first byte.
  const auto v1 = check_preamble(std::string("\0\0\0\x20", 4));
  EXPECT_EQ(v1.status, decode_status::error);
  EXPECT_NE(std::string(v1.reason).find("does not speak gwx link protocol 2"), std::string::npos);
}

TEST(link_codec, payload_moves_between_field_and_frame) {
  link::v2::Frame f;
  auto* op = f.mutable_command()->mutable_send_to_uids();
  op->add_uids("alice");
  op->mutable_message()->set_data("hi there");
  const std::string payload = detach_payload(f);
  EXPECT_EQ(payload, "hi there");
  EXPECT_TRUE(f.command().send_to_uids().message().data().empty());

  link::v2::Frame back;
  back.ParseFromString(f.SerializeAsString());
  ASSERT_TRUE(attach_payload(back, payload));
  EXPECT_EQ(back.command().send_to_uids().message().data(), "hi there");

  // A peer that writes the bytes into the header's field anyway: the frame ends up holding
  // what travelled beside the header, also when that is nothing, and an empty payload adds no
  // message to a send without one.
  back.mutable_command()->mutable_send_to_uids()->mutable_message()->set_data("in the header");
  ASSERT_TRUE(attach_payload(back, ""));
  EXPECT_EQ(back.command().send_to_uids().message().data(), "");
  link::v2::Frame event;
  event.mutable_event()->set_payload("in the header");
  ASSERT_TRUE(attach_payload(event, ""));
  EXPECT_EQ(event.event().payload(), "");
  link::v2::Frame bare_send;
  bare_send.mutable_command()->mutable_send_to_clients()->add_client_ids("c");
  ASSERT_TRUE(attach_payload(bare_send, ""));
  EXPECT_FALSE(bare_send.command().send_to_clients().has_message());

  link::v2::Frame ack;
  ack.mutable_ack()->add_event_ids(1);
  EXPECT_TRUE(detach_payload(ack).empty());
  EXPECT_FALSE(attach_payload(ack, "stray")) << "a payload on a frame that carries none";
  EXPECT_TRUE(attach_payload(ack, ""));

  link::v2::Frame close;
  close.mutable_command()->mutable_close_client()->set_client_id("x");
  EXPECT_EQ(payload_field(close), nullptr) << "no final message: no payload";
  close.mutable_command()->mutable_close_client()->mutable_final_message()->set_data("bye");
  EXPECT_EQ(detach_payload(close), "bye");
}

// The gateway keeps events encoded and flags a redelivery by flipping the header's last byte.
TEST(link_codec, redelivered_flag_is_the_last_byte_of_an_event_header) {
  auto f = event_frame(42);
  f.mutable_event()->set_binary(true);
  f.mutable_event()->set_close_reason("x");
  link_entries::find_or_add(*f.mutable_event()->mutable_client()->mutable_session(), "k")
      ->set_value("v");
  const std::string bytes = encoded(f, "payload");
  const auto r = decode(bytes, limits{});
  ASSERT_EQ(r.status, decode_status::message);
  ASSERT_GE(r.header.size(), 2U);
  EXPECT_EQ(static_cast<unsigned char>(r.header[r.header.size() - 2]), (15U << 3));
  EXPECT_EQ(r.header.back(), '\0');
  std::string flipped = bytes;
  flipped[k_prefix_size + r.header.size() - 1] = 1;
  link::v2::Frame g;
  ASSERT_EQ(decode(flipped, limits{}, g).status, decode_status::message);
  EXPECT_TRUE(g.event().redelivered());
  EXPECT_EQ(g.event().event_id(), 42U);
  EXPECT_EQ(link_entries::find(g.event().client().session(), "k")->value(), "v");
}

// A worker's reply to one client is encoded without a Frame object: the same bytes as encode()
// of the Frame, for ids whose lengths cross the varint boundaries.
TEST(link_codec, a_reply_to_one_client_encodes_as_its_frame_would) {
  for (const std::size_t id_size : {0U, 1U, 48U, 72U, 120U, 127U, 128U, 16383U, 16384U}) {
    for (const bool binary : {false, true}) {
      for (const std::string& payload : {std::string(), std::string("hi"), std::string(300, 'p')}) {
        const std::string id(id_size, 'a');
        link::v2::Frame f;
        auto* op = f.mutable_command()->mutable_send_to_clients();
        op->add_client_ids(id);
        op->mutable_message()->set_binary(binary);
        std::string direct = "kept";  // appends after what is there
        encode_send_to_client(direct, id, binary, payload);
        EXPECT_EQ(direct, "kept" + encoded(f, payload))
            << "id " << id_size << " binary " << binary << " payload " << payload.size();
        EXPECT_EQ(send_to_client_size(id, binary, payload.size()), direct.size() - 4);
      }
    }
  }
}

// Headers written by hand, in the canonical form the steady-state readers take and in other
// spellings protobuf also accepts (which those readers leave to protobuf's parser): a frame
// reused across them holds exactly what a fresh parse of each holds, and what protobuf refuses
// is refused.
std::string with_prefix(const std::string& header, std::string_view payload = "data") {
  std::string out;
  append_prefix(out, header.size(), payload.size());
  return out + header + std::string(payload);
}
std::string len_field(char tag, const std::string& body) {
  return std::string(1, tag) + static_cast<char>(body.size()) + body;  // bodies < 128 bytes
}

TEST(link_codec, hand_written_events_decode_as_protobuf_parses_them) {
  const std::string id = "0123456789abcdef0123456789abcdef0123456789abcdef";
  const std::string id_field = len_field(0x5a, id);
  const std::string kind = std::string("\x10\x02", 2);  // EVENT_KIND_MESSAGE
  ASSERT_EQ(link::v2::EVENT_KIND_MESSAGE, 2);
  const std::vector<std::string> bodies = {
      // canonical: event_id, kind, binary, client_id, redelivered
      std::string("\x08\x07", 2) + kind + std::string("\x28\x01", 2) + id_field +
          std::string("\x78\x00", 2),
      std::string("\x08\xff\x01", 3) + kind + id_field + std::string("\x78\x01", 2),
      kind + id_field,  // event id 0, no redelivered flag
      // other spellings
      kind + std::string("\x08\x07", 2) + id_field,                        // out of order
      std::string("\x08\x07", 2) + kind + id_field + id_field,             // repeated field
      std::string("\x08\x87\x00", 3) + kind + id_field,                    // long varint
      std::string("\x08\x07", 2) + kind + std::string("\x28\x02", 2),      // bool written as 2
      std::string("\x08\x07", 2) + std::string("\x10\x03", 2) + id_field,  // CLOSE
      std::string("\x08\x07", 2) + kind + id_field + std::string("\x80\x01\x05", 3),  // unknown
      std::string("\x08\x07", 2) + kind + len_field(0x4a, "bye") + id_field,  // close_reason
  };
  link::v2::Frame reused;
  for (std::size_t i = 0; i < bodies.size(); ++i) {
    const std::string header = len_field(0x3a, bodies[i]);
    link::v2::Frame fresh;
    ASSERT_TRUE(fresh.ParseFromString(header)) << "body " << i;
    const std::string wire = with_prefix(header);  // the payload is a view into it
    const auto r = decode(wire, limits{}, reused);
    ASSERT_EQ(r.status, decode_status::message) << "body " << i;
    EXPECT_EQ(r.payload, "data");
    EXPECT_EQ(reused.SerializeAsString(), fresh.SerializeAsString()) << "body " << i;
    EXPECT_EQ(reused.event().has_redelivered(), fresh.event().has_redelivered()) << "body " << i;
  }
  // A client id that is not UTF-8 in the string field: protobuf refuses it, and so does the
  // reused frame, right after an event it took.
  for (const std::size_t at : {0U, 7U, 20U, 47U}) {
    std::string bad_id = id;
    bad_id[at] = '\xff';
    for (const auto& bad_field : {bad_id, std::string("\xff\xfe")}) {
      const std::string bad = len_field(0x3a, kind + len_field(0x5a, bad_field));
      link::v2::Frame fresh;
      EXPECT_FALSE(fresh.ParseFromString(bad));
      EXPECT_EQ(decode(with_prefix(bad), limits{}, reused).status, decode_status::error)
          << "byte " << at;
      ASSERT_EQ(decode(with_prefix(len_field(0x3a, bodies[0])), limits{}, reused).status,
                decode_status::message);
    }
  }
}

TEST(link_codec, hand_written_sends_decode_as_protobuf_parses_them) {
  const std::string ids = len_field(0x0a, "client-one") + len_field(0x0a, "") +
                          len_field(0x0a, std::string("\xff\x00", 2));  // bytes: any value
  const std::vector<std::string> commands = {
      // canonical: request_id, send_to_clients{client_ids..., message{binary}}
      len_field(0x12, ids + len_field(0x12, std::string("\x10\x01", 2))),
      std::string("\x08\x05", 2) + len_field(0x12, ids + len_field(0x12, "")),
      len_field(0x12, ids),  // no message
      len_field(0x12, ""),   // no ids
      // other spellings
      len_field(0x12, len_field(0x12, "") + ids),                          // message first
      len_field(0x12, ids + len_field(0x12, len_field(0x0a, "inline"))),   // data in the header
      len_field(0x12, ids + len_field(0x12, std::string("\x10\x02", 2))),  // bool written as 2
      len_field(0x12, ids) + std::string("\x08\x05", 2),                   // request id last
      len_field(0x12, ids + std::string("\x18\x01", 2)),                   // unknown field
      len_field(0x12, ids) + len_field(0x12, len_field(0x0a, "merged")),   // op written twice
  };
  link::v2::Frame reused;
  for (std::size_t i = 0; i < commands.size(); ++i) {
    const std::string header = len_field(0x52, commands[i]);
    link::v2::Frame fresh;
    ASSERT_TRUE(fresh.ParseFromString(header)) << "command " << i;
    // Twice each: the first may follow another shape, the second follows itself.
    for (int round = 0; round < 2; ++round) {
      const std::string wire = with_prefix(header);
      const auto r = decode(wire, limits{}, reused);
      ASSERT_EQ(r.status, decode_status::message) << "command " << i;
      EXPECT_EQ(reused.SerializeAsString(), fresh.SerializeAsString()) << "command " << i;
      EXPECT_EQ(reused.command().send_to_clients().has_message(),
                fresh.command().send_to_clients().has_message())
          << "command " << i;
    }
  }
}

}  // namespace
}  // namespace gwx::link_codec
