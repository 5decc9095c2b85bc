// gwx-bench's own pieces without sockets: the message payload and its checks, the latency
// histogram, the client/server framing over the project's codecs, URLs and the upgrade check.
#include <gtest/gtest.h>

#include "common/codec/ws_handshake.hpp"
#include "tools/bench/latency_histogram.hpp"
#include "tools/bench/payload.hpp"
#include "tools/bench/target_url.hpp"
#include "tools/bench/wire.hpp"

namespace gwx::bench {
namespace {

TEST(BenchPayload, RoundTripsSequenceAndTime) {
  for (const std::size_t size : {payload::k_min_size, std::size_t{32}, std::size_t{1000}}) {
    std::string s;
    payload::write(s, size, 0xfffffffeU, 0x123456789abcULL);
    ASSERT_EQ(s.size(), size);
    const auto f = payload::read(s, size);
    EXPECT_TRUE(f.ok);
    EXPECT_EQ(f.seq, 0xfffffffeU);
    EXPECT_EQ(f.sent_ns, 0x123456789abcULL);
    EXPECT_EQ(s.find_first_of("\n\r"), std::string::npos) << "must be a valid tcp+line message";
  }
}

TEST(BenchPayload, AnyChangedByteIsNoticed) {
  std::string sent;
  payload::write(sent, 32, 41, 987654321);
  for (std::size_t i = 0; i < sent.size(); ++i) {
    for (const char c : {'0', '9', 'a', 'f', 'A', 'Z', 'x'}) {
      if (sent[i] == c) {
        continue;
      }
      auto got = sent;
      got[i] = c;
      const auto f = payload::read(got, 32);
      // Either not well formed, or it names another message / another send time, which the
      // echo check compares with what it sent.
      EXPECT_TRUE(!f.ok || f.seq != 41 || f.sent_ns != 987654321) << "byte " << i << " = " << c;
    }
  }
  EXPECT_FALSE(payload::read(sent.substr(0, 31), 32).ok);
  EXPECT_FALSE(payload::read(sent + "A", 32).ok);
}

TEST(BenchHistogram, ExactBelow128AndWithinTwoPercentAbove) {
  latency_histogram h;
  EXPECT_EQ(h.quantile(0.5), 0U);
  for (std::uint64_t v = 1; v <= 100; ++v) {
    h.record(v);
  }
  EXPECT_EQ(h.quantile(0.5), 50U);
  EXPECT_EQ(h.quantile(0.99), 99U);
  EXPECT_EQ(h.quantile(1.0), 100U);
  latency_histogram big;
  for (std::uint64_t v = 1; v <= 100000; ++v) {
    big.record(v * 1000);  // 1 µs .. 100 ms
  }
  for (const double q : {0.5, 0.99, 0.999}) {
    const double expected = q * 100000 * 1000;
    EXPECT_NEAR(static_cast<double>(big.quantile(q)), expected, expected * 0.02) << q;
  }
  latency_histogram merged;
  merged.merge(h);
  merged.merge(h);
  EXPECT_EQ(merged.count(), 200U);
  EXPECT_EQ(merged.quantile(0.5), 50U);
  merged.clear();
  EXPECT_EQ(merged.count(), 0U);
}

/// Encodes `messages` from `from`, decodes them on the other side with the input split in two
/// reads at every byte offset.
void round_trip_every_split(protocol proto, side from, const std::vector<std::string>& messages) {
  std::string wire;
  for (const auto& m : messages) {
    encode_message(wire, proto, from, m, false, 0x01020304);
  }
  const auto to = from == side::client ? side::server : side::client;
  for (std::size_t split = 0; split <= wire.size(); ++split) {
    message_decoder dec(proto, to, 1 << 20, proto == protocol::tcp_raw ? messages[0].size() : 0);
    std::string buf = wire.substr(0, split);
    std::vector<std::string> got;
    const auto drain = [&] {
      for (;;) {
        const auto ev = dec.next(buf.data(), buf.size());
        ASSERT_NE(ev.type, wire_event::kind::error) << ev.data << " split " << split;
        if (ev.type == wire_event::kind::need_more) {
          return;
        }
        ASSERT_EQ(ev.type, wire_event::kind::message);
        got.emplace_back(ev.data);
        buf.erase(0, ev.consumed);
      }
    };
    drain();
    buf += wire.substr(split);
    drain();
    EXPECT_EQ(got, messages) << protocol_name(proto) << " split at " << split;
  }
}

TEST(BenchWire, EveryProtocolBothWaysAtEverySplit) {
  std::vector<std::string> messages;
  for (std::uint32_t i = 0; i < 3; ++i) {
    messages.emplace_back();
    payload::write(messages.back(), 32, i, 1000 + i);
  }
  for (const auto proto :
       {protocol::ws, protocol::tcp_line, protocol::tcp_frame, protocol::tcp_raw}) {
    round_trip_every_split(proto, side::client, messages);
    round_trip_every_split(proto, side::server, messages);
  }
}

TEST(BenchWire, ClientFramesAreMaskedServerFramesAreNot) {
  std::string client;
  encode_message(client, protocol::ws, side::client, "hello", false, 0xa1b2c3d4);
  EXPECT_EQ(static_cast<unsigned char>(client[1]) & 0x80, 0x80);
  EXPECT_EQ(client.find("hello"), std::string::npos) << "payload must travel masked";
  std::string server;
  encode_message(server, protocol::ws, side::server, "hello", false, 0);
  EXPECT_EQ(static_cast<unsigned char>(server[1]) & 0x80, 0);
  // A server parser rejects an unmasked frame (RFC 6455 5.1), so masking is not optional.
  message_decoder strict(protocol::ws, side::server, 1024);
  EXPECT_EQ(strict.next(server.data(), server.size()).type, wire_event::kind::error);
}

TEST(BenchWire, UpgradeRequestAndResponse) {
  target_url url = parse_target_url("ws://127.0.0.1:8080/chat?x=1");
  std::string key;
  const auto request = make_upgrade_request(url, 42, key);
  EXPECT_EQ(key.size(), 24U);
  codec::ws::handshake_parser parser;
  const auto r = parser.parse(request);
  ASSERT_EQ(r.type, codec::ws::handshake_result::kind::upgrade) << r.reason;
  EXPECT_EQ(parser.request().path, "/chat");
  EXPECT_EQ(parser.request().query, "x=1");
  const auto response = codec::ws::make_upgrade_response(parser.accept_key());
  EXPECT_EQ(check_upgrade_response(response.substr(0, response.size() - 1), key), 0U);
  EXPECT_EQ(check_upgrade_response(response + "frames", key), response.size());
  std::string other_key;
  make_upgrade_request(url, 43, other_key);
  EXPECT_THROW(check_upgrade_response(response, other_key), std::runtime_error);
  EXPECT_THROW(check_upgrade_response(codec::ws::make_error_response(403, "no"), key),
               std::runtime_error);
}

TEST(BenchUrl, ParsesListenerUrlsAndSaysWhatIsWrong) {
  const auto ws = parse_target_url("ws://[::1]:9000/p");
  EXPECT_EQ(ws.proto, protocol::ws);
  EXPECT_EQ(ws.host, "::1");
  EXPECT_EQ(ws.port, 9000);
  EXPECT_EQ(ws.path, "/p");
  EXPECT_EQ(ws.to_string(), "ws://[::1]:9000/p");
  EXPECT_EQ(parse_target_url("ws://h:1").path, "/");
  EXPECT_EQ(parse_target_url("tcp+frame://127.0.0.1:5").to_string(), "tcp+frame://127.0.0.1:5");
  EXPECT_EQ(parse_target_url("tcp+line://0.0.0.0:0", true).port, 0);
  const auto error_of = [](const char* text) {
    try {
      parse_target_url(text);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  const auto wss = parse_target_url("wss://127.0.0.1:9443/chat");
  EXPECT_TRUE(wss.tls);
  EXPECT_EQ(wss.proto, protocol::ws);
  EXPECT_EQ(wss.to_string(), "wss://127.0.0.1:9443/chat");
  const auto line = parse_target_url("tls+line://127.0.0.1:9000");
  EXPECT_TRUE(line.tls);
  EXPECT_EQ(line.proto, protocol::tcp_line);
  EXPECT_EQ(line.to_string(), "tls+line://127.0.0.1:9000");
  EXPECT_FALSE(parse_target_url("tcp+line://127.0.0.1:9000").tls);
  EXPECT_NE(error_of("127.0.0.1:80").find("not a URL"), std::string::npos);
  EXPECT_NE(error_of("udp://h:1").find("unknown protocol 'udp'"), std::string::npos);
  EXPECT_NE(error_of("tls+udp://h:1").find("unknown protocol"), std::string::npos);
  EXPECT_NE(error_of("tcp+line://h:1/x").find("has no path"), std::string::npos);
  EXPECT_NE(error_of("ws://h/").find("bad address"), std::string::npos);
  EXPECT_NE(error_of("ws://h:0/").find("port 0"), std::string::npos);
}

}  // namespace
}  // namespace gwx::bench
