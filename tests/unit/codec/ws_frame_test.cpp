#include "common/codec/ws_frame.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

namespace gwx::codec {
namespace {

using ws::frame_event;
using ws::frame_parser;
using ws::opcode;
using kind = frame_event::kind;

constexpr std::uint32_t k_mask = 0x37fa213d;  // the RFC 6455 5.7 example key

/// What a user of the parser keeps from one event.
struct event {
  kind type;
  bool binary = false;
  std::string data;
  std::uint16_t code = 0;

  bool operator==(const event&) const = default;
};

std::ostream& operator<<(std::ostream& os, const event& e) {
  return os << "{type " << static_cast<int>(e.type) << ", binary " << e.binary << ", "
            << e.data.size() << " bytes, code " << e.code << "}";
}

event text(std::string s) {
  return {kind::message, false, std::move(s), 0};
}
event binary(std::string s) {
  return {kind::message, true, std::move(s), 0};
}
event ping(std::string s) {
  return {kind::ping, false, std::move(s), 0};
}
event pong(std::string s) {
  return {kind::pong, false, std::move(s), 0};
}
event close(std::uint16_t code, std::string reason = {}) {
  return {kind::close, false, std::move(reason), code};
}
event error(std::uint16_t code) {
  return {kind::error, false, {}, code};
}

/// Masked client frame.
std::string frame(opcode op, std::string_view payload, bool fin = true,
                  std::uint32_t mask = k_mask) {
  std::string out;
  ws::encode_masked_frame(out, op, payload, mask, fin);
  return out;
}

/// Raw two header bytes followed by a mask key and payload, for frames the encoders refuse to
/// build.
std::string raw_frame(unsigned b0, std::string_view payload, bool masked = true) {
  std::string out;
  ws::encode_masked_frame(out, opcode::text, payload, k_mask);
  out[0] = static_cast<char>(b0);
  if (!masked) {
    std::string plain;
    ws::encode_frame(plain, opcode::text, payload);
    plain[0] = static_cast<char>(b0);
    return plain;
  }
  return out;
}

std::string close_body(std::uint16_t code, std::string_view reason = {}) {
  std::string body;
  body.push_back(static_cast<char>(code >> 8));
  body.push_back(static_cast<char>(code & 0xff));
  body.append(reason);
  return body;
}

/// Calls next() until need_more, like a session does, dropping consumed bytes; stops for good
/// after close or error (a session closes then).
void drain(frame_parser& parser, std::string& buf, std::vector<event>& got) {
  if (!got.empty() && (got.back().type == kind::error || got.back().type == kind::close)) {
    return;
  }
  for (;;) {
    const frame_event ev = parser.next(buf.data(), buf.size());
    ASSERT_LE(ev.consumed, buf.size());
    if (ev.type == kind::need_more) {
      buf.erase(0, ev.consumed);  // whole fragments, already taken in
      return;
    }
    if (ev.type != kind::need_more) {
      got.push_back({ev.type, ev.binary, std::string(ev.data), ev.close_code});
    }
    buf.erase(0, ev.consumed);
    if (ev.type == kind::need_more || ev.type == kind::error || ev.type == kind::close) {
      return;
    }
  }
}

/// Feeds `wire` in the given chunk sizes (the last chunk takes the rest).
std::vector<event> parse_chunks(const std::string& wire, const std::vector<std::size_t>& chunks,
                                std::size_t max = 1 << 20, ws::role side = ws::role::server) {
  frame_parser parser(max, side);
  std::string buf;
  std::vector<event> got;
  std::size_t pos = 0;
  for (std::size_t n : chunks) {
    buf.append(wire, pos, n);
    pos += std::min(n, wire.size() - pos);
    drain(parser, buf, got);
  }
  buf.append(wire, pos);
  drain(parser, buf, got);
  return got;
}

std::vector<event> parse_all(const std::string& wire, std::size_t max = 1 << 20,
                             ws::role side = ws::role::server) {
  return parse_chunks(wire, {}, max, side);
}

/// Every split in two, then one byte at a time: all must give `want`.
void expect_every_split(const std::string& wire, const std::vector<event>& want,
                        std::size_t max = 1 << 20) {
  for (std::size_t split = 0; split <= wire.size(); ++split) {
    ASSERT_EQ(parse_chunks(wire, {split}, max), want) << "split at " << split;
  }
  ASSERT_EQ(parse_chunks(wire, std::vector<std::size_t>(wire.size(), 1), max), want)
      << "one byte at a time";
}

std::string pattern(std::size_t n) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) {
    s[i] = static_cast<char>('a' + i % 26);
  }
  return s;
}

TEST(WsFrame, EveryByteSplitGivesTheSameEvents) {
  const std::string bin200(200, '\x01');
  std::string wire =
      frame(opcode::text, "hello") + frame(opcode::binary, bin200) +
      frame(opcode::ping, "are you there") + frame(opcode::text, "", true) +
      frame(opcode::text, "fr\xc3", false) + frame(opcode::ping, "p") +
      frame(opcode::continuation, "\xa9g", false) + frame(opcode::continuation, "", false) +
      frame(opcode::pong, "") + frame(opcode::continuation, "ment", true) +
      frame(opcode::binary, std::string("\x00\xff", 2), false) +
      frame(opcode::continuation, "\x80", true) + frame(opcode::close, close_body(1000, "bye"));
  const std::vector<event> want = {text("hello"),
                                   binary(bin200),
                                   ping("are you there"),
                                   text(""),
                                   ping("p"),
                                   pong(""),
                                   text("fr\xc3\xa9gment"),
                                   binary(std::string("\x00\xff\x80", 3)),
                                   close(1000, "bye")};
  expect_every_split(wire, want);
}

TEST(WsFrame, EveryByteSplitWithSixtyFourBitLength) {
  const std::string big = pattern(70000);
  const std::string wire = frame(opcode::binary, big) + frame(opcode::text, "after");
  ASSERT_EQ(wire.substr(0, 2), std::string("\x82\xff"));
  const std::vector<event> want = {binary(big), text("after")};
  // Every split of a 70 kB frame is slow-ish; check the header region and a spread of the rest.
  for (std::size_t split = 0; split <= wire.size(); split += split < 64 ? 1 : 997) {
    ASSERT_EQ(parse_chunks(wire, {split}), want) << "split at " << split;
  }
  ASSERT_EQ(parse_chunks(wire, std::vector<std::size_t>(wire.size(), 1)), want);
}

TEST(WsFrame, SeveralFramesInOneBufferSingleFramesAreZeroCopy) {
  std::string buf =
      frame(opcode::text, "one") + frame(opcode::binary, "two") + frame(opcode::ping, "three");
  frame_parser parser(1024);
  auto ev = parser.next(buf.data(), buf.size());
  ASSERT_EQ(ev.type, kind::message);
  EXPECT_FALSE(ev.binary);
  EXPECT_EQ(ev.data, "one");
  EXPECT_EQ(ev.consumed, 2u + 4u + 3u);
  EXPECT_EQ(ev.data.data(), buf.data() + 6);  // a view into the caller's (unmasked) buffer
  std::size_t off = ev.consumed;
  ev = parser.next(buf.data() + off, buf.size() - off);
  ASSERT_EQ(ev.type, kind::message);
  EXPECT_TRUE(ev.binary);
  EXPECT_EQ(ev.data, "two");
  off += ev.consumed;
  ev = parser.next(buf.data() + off, buf.size() - off);
  ASSERT_EQ(ev.type, kind::ping);
  EXPECT_EQ(ev.data, "three");
  off += ev.consumed;
  EXPECT_EQ(off, buf.size());
  ev = parser.next(buf.data() + off, 0);
  EXPECT_EQ(ev.type, kind::need_more);
  EXPECT_EQ(ev.consumed, 0u);
}

TEST(WsFrame, SevenSixteenAndSixtyFourBitLengths) {
  struct length_case {
    std::size_t size;
    std::size_t header;  // without the mask key
  };
  for (const auto [size, header] : {length_case{0, 2}, length_case{1, 2}, length_case{125, 2},
                                    length_case{126, 4}, length_case{127, 4}, length_case{65535, 4},
                                    length_case{65536, 10}, length_case{100000, 10}}) {
    const std::string payload = pattern(size);
    const std::string wire = frame(opcode::binary, payload);
    EXPECT_EQ(wire.size(), header + 4 + size) << size;
    EXPECT_EQ(parse_all(wire), std::vector<event>{binary(payload)}) << size;
    char h[ws::k_max_header];
    EXPECT_EQ(ws::encode_header(h, opcode::binary, size), header);
  }
}

TEST(WsFrame, UnmasksEveryLengthAndKey) {
  for (std::uint32_t key : {0u, 0x01020304u, 0xffffffffu, k_mask}) {
    for (std::size_t n = 0; n < 40; ++n) {
      const std::string payload = pattern(n);
      const std::string wire = frame(opcode::binary, payload, true, key);
      if (key != 0 && n > 0) {
        EXPECT_NE(wire.substr(6), payload);
      }
      EXPECT_EQ(parse_all(wire), std::vector<event>{binary(payload)}) << key << " " << n;
    }
  }
}

TEST(WsFrame, RfcMaskedHelloExample) {
  // RFC 6455 5.7: a single-frame masked text message containing "Hello".
  std::string wire("\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58", 11);
  EXPECT_EQ(frame(opcode::text, "Hello"), wire);
  EXPECT_EQ(parse_all(wire), std::vector<event>{text("Hello")});
}

TEST(WsFrame, MaxAcceptedMaxPlusOneRejectedSingleFrame) {
  EXPECT_EQ(parse_all(frame(opcode::text, std::string(200, 'x')), 200),
            std::vector<event>{text(std::string(200, 'x'))});
  // Rejected from the header alone: only the header and mask key are delivered.
  const std::string big = frame(opcode::text, std::string(201, 'x'));
  EXPECT_EQ(parse_all(big.substr(0, 8), 200), std::vector<event>{error(ws::k_close_too_big)});
  EXPECT_EQ(parse_all(big.substr(0, 4), 200), std::vector<event>{error(ws::k_close_too_big)});
  // A 64-bit length far beyond memory is rejected without allocating.
  const std::string huge("\x82\xff\x00\x00\x01\x00\x00\x00\x00\x00", 10);
  EXPECT_EQ(parse_all(huge, 1 << 20), std::vector<event>{error(ws::k_close_too_big)});
  // Control frames do not count against the message limit.
  EXPECT_EQ(parse_all(frame(opcode::ping, "12345"), 0), std::vector<event>{ping("12345")});
  EXPECT_EQ(parse_all(frame(opcode::text, ""), 0), std::vector<event>{text("")});
}

TEST(WsFrame, MaxAcceptedMaxPlusOneRejectedAcrossFragments) {
  const std::string ok = frame(opcode::binary, "123456", false) + frame(opcode::ping, "") +
                         frame(opcode::continuation, "7890", true);
  expect_every_split(ok, {ping(""), binary("1234567890")}, 10);
  const std::string too_big =
      frame(opcode::binary, "123456", false) + frame(opcode::continuation, "78901", true);
  // The second fragment's header is enough to refuse.
  EXPECT_EQ(parse_all(too_big.substr(0, 12 + 2), 10),
            std::vector<event>{error(ws::k_close_too_big)});
  expect_every_split(too_big, {error(ws::k_close_too_big)}, 10);
  const std::string too_many = frame(opcode::text, "12345", false) +
                               frame(opcode::continuation, "12345", false) +
                               frame(opcode::continuation, "1", true);
  expect_every_split(too_many, {error(ws::k_close_too_big)}, 10);
}

TEST(WsFrame, FragmentedTextWithPingInterleaved) {
  const std::string wire = frame(opcode::text, "Hel", false) + frame(opcode::ping, "x") +
                           frame(opcode::continuation, "lo", false) +
                           frame(opcode::continuation, " world", true);
  expect_every_split(wire, {ping("x"), text("Hello world")});
}

/// Feeds `wire` whole to `parser` and returns its events.
std::vector<event> feed(frame_parser& parser, std::string wire) {
  std::vector<event> got;
  drain(parser, wire, got);
  return got;
}

TEST(WsFrame, AResetParserIsANewOneWithTheNewLimit) {
  frame_parser parser(10);
  // Left in the middle of a fragmented message: its start must not show in the next one.
  EXPECT_TRUE(feed(parser, frame(opcode::text, "Hel", false)).empty());
  EXPECT_TRUE(parser.in_fragmented_message());
  EXPECT_GT(parser.buffered(), 0U);
  parser.reset(20);
  EXPECT_FALSE(parser.in_fragmented_message());
  EXPECT_EQ(parser.buffered(), 0U);
  EXPECT_EQ(feed(parser, frame(opcode::continuation, "lo", true)),
            std::vector<event>{error(ws::k_close_protocol_error)});
  // After an error every call repeats it; a reset parser reads again, up to its new limit.
  parser.reset(20);
  EXPECT_EQ(feed(parser, frame(opcode::binary, std::string(20, 'x'))),
            std::vector<event>{binary(std::string(20, 'x'))});
  EXPECT_EQ(feed(parser, frame(opcode::text, "12345678901", false) +
                             frame(opcode::continuation, "1234567890", true)),
            std::vector<event>{error(ws::k_close_too_big)});
  parser.reset(5);
  EXPECT_EQ(feed(parser, frame(opcode::text, "abc", false) + frame(opcode::continuation, "de")),
            std::vector<event>{text("abcde")});
}

TEST(WsFrame, NeedMoreConsumesWholeFragmentsOnly) {
  std::string buf = frame(opcode::text, "ab", false) + frame(opcode::continuation, "c", false);
  const std::string partial = frame(opcode::continuation, "d", true);
  const std::size_t fragments = buf.size();
  buf += partial.substr(0, 3);  // the start of the last fragment
  frame_parser parser(64);
  EXPECT_FALSE(parser.in_fragmented_message());
  auto ev = parser.next(buf.data(), buf.size());
  EXPECT_EQ(ev.type, kind::need_more);
  EXPECT_EQ(ev.consumed, fragments);  // taken in; the unfinished frame stays with the caller
  EXPECT_TRUE(parser.in_fragmented_message());
  buf.erase(0, ev.consumed);
  // Asking again without new bytes changes nothing.
  ev = parser.next(buf.data(), buf.size());
  EXPECT_EQ(ev.type, kind::need_more);
  EXPECT_EQ(ev.consumed, 0u);
  // A ping between fragments; then the rest of the last fragment.
  const std::string ping_frame = frame(opcode::ping, "hb");
  buf = ping_frame + partial;
  ev = parser.next(buf.data(), buf.size());
  ASSERT_EQ(ev.type, kind::ping);
  EXPECT_EQ(ev.data, "hb");
  EXPECT_EQ(ev.consumed, ping_frame.size());
  buf.erase(0, ev.consumed);
  ev = parser.next(buf.data(), buf.size());
  ASSERT_EQ(ev.type, kind::message);
  EXPECT_EQ(ev.data, "abcd");
  EXPECT_EQ(ev.consumed, buf.size());
  EXPECT_FALSE(parser.in_fragmented_message());
}

TEST(WsFrame, TinyFragmentsCostTheCallerNothing) {
  // One-byte fragments of a short message are fine (Autobahn 6.2.x does this).
  const std::string msg = "Hello-\xc2\xb5@\xc3\x9f\xc3\xb6\xc3\xa4-UTF-8!!";
  std::string wire;
  for (std::size_t i = 0; i < msg.size(); ++i) {
    wire +=
        frame(i == 0 ? opcode::text : opcode::continuation, msg.substr(i, 1), i + 1 == msg.size());
  }
  expect_every_split(wire, {text(msg)}, 64);
  // A message of exactly max_message bytes in one-byte fragments (7 wire bytes each) is
  // accepted; one byte more is 1009. Only the payload counts against the limit.
  constexpr std::size_t max = 1000;
  const auto one_byte_fragments = [](std::size_t n) {
    std::string out;
    for (std::size_t i = 0; i < n; ++i) {
      out += frame(i == 0 ? opcode::binary : opcode::continuation, "x", i + 1 == n);
    }
    return out;
  };
  EXPECT_EQ(parse_all(one_byte_fragments(max), max),
            std::vector<event>{binary(std::string(max, 'x'))});
  EXPECT_EQ(parse_all(one_byte_fragments(max + 1), max),
            std::vector<event>{error(ws::k_close_too_big)});
  // Endless empty fragments: each is consumed at once, so the caller's buffer never holds more
  // than one frame.
  std::string empty = frame(opcode::binary, "", false);
  for (int i = 0; i < 10000; ++i) {
    empty += frame(opcode::continuation, "", false);
  }
  frame_parser parser(64);
  std::string buf;
  for (std::size_t off = 0; off < empty.size(); off += 5) {
    buf.append(empty, off, 5);
    const auto ev = parser.next(buf.data(), buf.size());
    ASSERT_EQ(ev.type, kind::need_more);
    buf.erase(0, ev.consumed);
    ASSERT_LT(buf.size(), 6u + 5u);
  }
  EXPECT_TRUE(parser.in_fragmented_message());
}

TEST(WsFrame, UnmaskedClientFrameIsProtocolError) {
  EXPECT_EQ(parse_all(raw_frame(0x81, "hi", false)),
            std::vector<event>{error(ws::k_close_protocol_error)});
  EXPECT_EQ(parse_all(raw_frame(0x89, "", false)),
            std::vector<event>{error(ws::k_close_protocol_error)});
}

TEST(WsFrame, EachReservedBitIsProtocolError) {
  for (unsigned rsv : {0x40u, 0x20u, 0x10u}) {
    const std::string wire = frame(opcode::text, "ok") + raw_frame(0x81 | rsv, "bad");
    expect_every_split(wire, {text("ok"), error(ws::k_close_protocol_error)});
  }
}

TEST(WsFrame, UnknownOpcodesAreProtocolError) {
  for (unsigned op : {3u, 4u, 5u, 6u, 7u, 11u, 12u, 13u, 14u, 15u}) {
    EXPECT_EQ(parse_all(raw_frame(0x80 | op, "")),
              std::vector<event>{error(ws::k_close_protocol_error)})
        << op;
    // Decided from the first two bytes.
    EXPECT_EQ(parse_all(raw_frame(0x80 | op, "abc").substr(0, 2)),
              std::vector<event>{error(ws::k_close_protocol_error)})
        << op;
  }
}

TEST(WsFrame, FragmentedControlFrameIsProtocolError) {
  for (opcode op : {opcode::ping, opcode::pong, opcode::close}) {
    EXPECT_EQ(parse_all(frame(op, "", false)),
              std::vector<event>{error(ws::k_close_protocol_error)});
  }
}

TEST(WsFrame, OversizedControlFrameIsProtocolError) {
  EXPECT_EQ(parse_all(frame(opcode::ping, std::string(125, 'p'))),
            std::vector<event>{ping(std::string(125, 'p'))});
  for (opcode op : {opcode::ping, opcode::pong, opcode::close}) {
    // The 126-byte payload is never needed: the length byte says it all.
    EXPECT_EQ(parse_all(frame(op, std::string(126, 'p')).substr(0, 2)),
              std::vector<event>{error(ws::k_close_protocol_error)});
  }
}

TEST(WsFrame, FragmentOrderViolationsAreProtocolErrors) {
  EXPECT_EQ(parse_all(frame(opcode::continuation, "x", true)),
            std::vector<event>{error(ws::k_close_protocol_error)});
  EXPECT_EQ(parse_all(frame(opcode::continuation, "x", false)),
            std::vector<event>{error(ws::k_close_protocol_error)});
  EXPECT_EQ(parse_all(frame(opcode::text, "a", true) + frame(opcode::continuation, "b", true)),
            (std::vector<event>{text("a"), error(ws::k_close_protocol_error)}));
  for (opcode op : {opcode::text, opcode::binary}) {
    expect_every_split(frame(opcode::text, "a", false) + frame(op, "b", true),
                       {error(ws::k_close_protocol_error)});
  }
}

TEST(WsFrame, SixtyFourBitLengthWithHighBitIsProtocolError) {
  const std::string wire("\x82\xff\x80\x00\x00\x00\x00\x00\x00\x01", 10);
  EXPECT_EQ(parse_all(wire), std::vector<event>{error(ws::k_close_protocol_error)});
}

TEST(WsFrame, InvalidUtf8InSingleTextFrame) {
  expect_every_split(frame(opcode::text, "ab\xc0\xaf"), {error(ws::k_close_invalid_payload)});
  // Truncated at the end of the message.
  expect_every_split(frame(opcode::text, "ab\xce"), {error(ws::k_close_invalid_payload)});
  // Binary is not checked.
  EXPECT_EQ(parse_all(frame(opcode::binary, "ab\xc0\xaf")),
            std::vector<event>{binary("ab\xc0\xaf")});
}

TEST(WsFrame, InvalidUtf8FailsFastInsideAPartialFrame) {
  const std::string wire = frame(opcode::text, "good \xed\xa0\x80" + std::string(1000, 'x'));
  // Only the start of the payload has arrived.
  EXPECT_EQ(parse_all(wire.substr(0, 8 + 8)),
            std::vector<event>{error(ws::k_close_invalid_payload)});
  EXPECT_EQ(parse_all(wire.substr(0, 8 + 5)), std::vector<event>{});
}

TEST(WsFrame, InvalidUtf8FailsFastOnANonFinalFragment) {
  const std::string first = frame(opcode::text, "\xce\xba\xe1\xbd\xb9", false) +
                            frame(opcode::continuation, "\xcf\x83\xce\xbc\xce\xb5\xf4\x90", false);
  // No final fragment ever arrives; the error comes anyway.
  expect_every_split(first, {error(ws::k_close_invalid_payload)});
  // A sequence split across fragments is fine.
  const std::string split =
      frame(opcode::text, "\xce", false) + frame(opcode::continuation, "\xba", true);
  expect_every_split(split, {text("\xce\xba")});
  // A message that ends inside a sequence is not.
  const std::string cut =
      frame(opcode::text, "a", false) + frame(opcode::continuation, "\xe1\xbd", true);
  expect_every_split(cut, {error(ws::k_close_invalid_payload)});
}

TEST(WsFrame, CloseReasonMustBeUtf8) {
  EXPECT_EQ(parse_all(frame(opcode::close, close_body(1000, "\xce\xba"))),
            std::vector<event>{close(1000, "\xce\xba")});
  EXPECT_EQ(parse_all(frame(opcode::close, close_body(1000, "\xce"))),
            std::vector<event>{error(ws::k_close_invalid_payload)});
  EXPECT_EQ(parse_all(frame(opcode::close, close_body(1000, "a\xff"))),
            std::vector<event>{error(ws::k_close_invalid_payload)});
}

TEST(WsFrame, BadCloseCodesAreProtocolErrors) {
  for (std::uint16_t code : {0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535}) {
    EXPECT_EQ(parse_all(frame(opcode::close, close_body(code))),
              std::vector<event>{error(ws::k_close_protocol_error)})
        << code;
  }
  EXPECT_EQ(parse_all(frame(opcode::close, "\x03")),
            std::vector<event>{error(ws::k_close_protocol_error)});
}

TEST(WsFrame, ValidCloseCodesAreAccepted) {
  for (std::uint16_t code :
       {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 4999}) {
    EXPECT_EQ(parse_all(frame(opcode::close, close_body(code, "why"))),
              std::vector<event>{close(code, "why")})
        << code;
  }
  EXPECT_EQ(parse_all(frame(opcode::close, "")), std::vector<event>{close(ws::k_close_no_status)});
}

TEST(WsFrame, InputAfterCloseIsIgnored) {
  std::string buf = frame(opcode::close, close_body(1001)) + frame(opcode::text, "late");
  frame_parser parser(64);
  auto ev = parser.next(buf.data(), buf.size());
  ASSERT_EQ(ev.type, kind::close);
  EXPECT_EQ(ev.close_code, 1001);
  EXPECT_EQ(ev.consumed, 6u + 2u);
  buf.erase(0, ev.consumed);
  ev = parser.next(buf.data(), buf.size());
  EXPECT_EQ(ev.type, kind::need_more);
  EXPECT_EQ(ev.consumed, 0u);
}

TEST(WsFrame, ErrorIsSticky) {
  std::string buf = raw_frame(0x83, "");
  frame_parser parser(64);
  auto ev = parser.next(buf.data(), buf.size());
  ASSERT_EQ(ev.type, kind::error);
  EXPECT_STRNE(ev.reason, "");
  buf = frame(opcode::text, "fine");
  ev = parser.next(buf.data(), buf.size());
  EXPECT_EQ(ev.type, kind::error);
  EXPECT_EQ(ev.close_code, ws::k_close_protocol_error);
  EXPECT_EQ(ev.consumed, 0u);
}

TEST(WsFrame, ClientRoleRequiresUnmaskedFrames) {
  std::string wire;
  ws::encode_frame(wire, opcode::text, "from server");
  ws::encode_frame(wire, opcode::binary, std::string(300, 'b'));
  ws::encode_frame(wire, opcode::ping, "hb");
  ws::encode_close(wire, 1000, "done");
  EXPECT_EQ(parse_all(wire, 1024, ws::role::client),
            (std::vector<event>{text("from server"), binary(std::string(300, 'b')), ping("hb"),
                                close(1000, "done")}));
  EXPECT_EQ(parse_all(frame(opcode::text, "masked"), 1024, ws::role::client),
            std::vector<event>{error(ws::k_close_protocol_error)});
}

TEST(WsFrame, EncodersWriteTheExpectedBytes) {
  std::string out;
  ws::encode_frame(out, opcode::text, "Hello");
  EXPECT_EQ(out, std::string("\x81\x05Hello"));
  out.clear();
  ws::encode_frame(out, opcode::binary, "ab", false);
  EXPECT_EQ(out, std::string("\x02\x02"
                             "ab"));
  out.clear();
  ws::encode_frame(out, opcode::binary, std::string(256, 'z'));
  EXPECT_EQ(out.substr(0, 4), std::string("\x82\x7e\x01\x00", 4));
  EXPECT_EQ(out.size(), 4u + 256u);
  char h[ws::k_max_header];
  ASSERT_EQ(ws::encode_header(h, opcode::binary, 0x0102030405ULL), 10u);
  EXPECT_EQ(std::string(h, 10), std::string("\x82\x7f\x00\x00\x00\x01\x02\x03\x04\x05", 10));
  out.clear();
  ws::encode_close(out, 1000, "bye");
  EXPECT_EQ(out, std::string("\x88\x05\x03\xe8"
                             "bye"));
  out.clear();
  ws::encode_close(out, ws::k_close_no_status);
  EXPECT_EQ(out, std::string("\x88\x00", 2));
}

TEST(WsFrame, CloseWithACodeAndNoReason) {
  // The gateway echoes a client's close code with the default (null) reason: under UBSan this
  // once stopped the gateway (memcpy from a null pointer, even of 0 bytes).
  std::string out;
  ws::encode_close(out, 1000);
  EXPECT_EQ(out, std::string("\x88\x02\x03\xe8", 4));
  out.clear();
  ws::encode_close(out, 4000, std::string_view());
  EXPECT_EQ(out, std::string("\x88\x02\x0f\xa0", 4));
}

TEST(WsFrame, CloseReasonIsCutToFitAtACharacterBoundary) {
  // 61 two-byte characters = 122 bytes, then one three-byte character that would end at 125.
  std::string reason;
  for (int i = 0; i < 61; ++i) {
    reason += "\xc3\xa9";
  }
  reason += "\xe2\x82\xac";  // 125 bytes of reason: too long by 2
  std::string out;
  ws::encode_close(out, 1001, reason);
  ASSERT_EQ(static_cast<unsigned char>(out[1]), 2u + 122u);
  std::string parsed_wire = out;
  EXPECT_EQ(parse_all(parsed_wire, 64, ws::role::client),
            std::vector<event>{close(1001, reason.substr(0, 122))});
}

TEST(WsFrame, FragmentBufferIsReusedAcrossMessages) {
  // Two fragmented messages back to back in one buffer: the second must not see the first.
  const std::string wire = frame(opcode::text, "aa", false) +
                           frame(opcode::continuation, "bb", true) +
                           frame(opcode::binary, "cc", false) +
                           frame(opcode::continuation, "dd", true) + frame(opcode::text, "ee");
  expect_every_split(wire, {text("aabb"), binary("ccdd"), text("ee")});
}

}  // namespace
}  // namespace gwx::codec
