#include "common/net/link_stream.hpp"

#include <gtest/gtest.h>

#include <asio.hpp>
#include <chrono>

namespace gwx {
namespace {

using namespace std::chrono_literals;

struct socket_pair {
  asio::io_context io;
  asio::ip::tcp::acceptor acceptor{io, {asio::ip::make_address("127.0.0.1"), 0}};
  asio::ip::tcp::socket client{io};
  asio::ip::tcp::socket server{io};

  socket_pair() {
    client.connect(acceptor.local_endpoint());
    server = acceptor.accept();
  }

  template <typename Done>
  void run_until(Done done, std::chrono::seconds limit = 10s) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done() && std::chrono::steady_clock::now() < deadline) {
      io.run_for(10ms);
    }
  }
};

link::v2::Frame event(std::uint64_t id) {
  link::v2::Frame ev;
  ev.mutable_event()->set_event_id(id);
  return ev;
}

// Many frames arriving faster than they are read fill the read buffer past half its size in one
// read; consuming them must keep the buffer usable (this once threw std::length_error).
TEST(LinkStream, DeliversABurstOfFramesWithTheirPayloadsInOrder) {
  socket_pair p;
  std::string closed;
  std::vector<std::uint64_t> ids;
  std::size_t bad_payloads = 0;
  auto receiver = std::make_shared<link_stream>(std::move(p.server));
  auto sender = std::make_shared<link_stream>(std::move(p.client));
  sender->start([](link::v2::Frame&, std::string_view) {}, [](const std::string&) {});

  constexpr std::uint64_t k_frames = 20000;
  // Queue everything before the receiver reads anything, so its reads come back full.
  for (std::uint64_t i = 0; i < k_frames; ++i) {
    sender->send(event(i), std::string(100, static_cast<char>('a' + i % 26)));
  }
  receiver->start(
      [&](link::v2::Frame& fr, std::string_view payload) {
        const auto id = fr.event().event_id();
        bad_payloads += payload != std::string(100, static_cast<char>('a' + id % 26)) ? 1 : 0;
        ids.push_back(id);
      },
      [&](const std::string& why) { closed = why; });
  p.run_until([&] { return ids.size() >= k_frames || !closed.empty(); });
  EXPECT_EQ(closed, "");
  EXPECT_EQ(bad_payloads, 0U);
  ASSERT_EQ(ids.size(), k_frames);
  for (std::uint64_t i = 0; i < k_frames; ++i) {
    ASSERT_EQ(ids[i], i);
  }
}

// Before the handshake only tiny frames pass: an unauthenticated peer cannot make the other
// side buffer megabytes.
TEST(LinkStream, RefusesLargeFramesUntilAuthenticated) {
  for (const bool authenticated : {false, true}) {
    socket_pair p;
    std::string closed;
    std::size_t got = 0;
    auto receiver = std::make_shared<link_stream>(std::move(p.server), 1 << 20);
    auto sender = std::make_shared<link_stream>(std::move(p.client));
    sender->start([](link::v2::Frame&, std::string_view) {}, [](const std::string&) {});
    receiver->start([&](link::v2::Frame&, std::string_view) { ++got; },
                    [&](const std::string& why) { closed = why; });
    if (authenticated) {
      receiver->authenticated();
    }
    sender->send(event(1), std::string(5000, 'x'));
    p.run_until([&] { return got > 0 || !closed.empty(); });
    if (authenticated) {
      EXPECT_EQ(got, 1U);
      EXPECT_EQ(closed, "");
    } else {
      EXPECT_EQ(got, 0U);
      EXPECT_EQ(closed, "link frame larger than the limit");
    }
  }
}

// A peer that stops reading cannot grow our memory without bound: the link is cut at the cap.
TEST(LinkStream, CutsAPeerThatStopsReadingAtTheSendCap) {
  socket_pair p;
  std::string closed;
  constexpr std::size_t k_cap = 4 << 20;
  auto sender = std::make_shared<link_stream>(std::move(p.client), 1 << 20, k_cap);
  sender->start([](link::v2::Frame&, std::string_view) {},
                [&](const std::string& why) { closed = why; });
  // The other end never reads: the kernel buffers fill, then our queue.
  const std::string payload(64 * 1024, 'x');
  net::send_status status = net::send_status::ok;
  bool saw_backpressure = false;
  for (int i = 0; i < 10000 && status != net::send_status::dropped; ++i) {
    status = sender->send(event(i), payload);
    saw_backpressure = saw_backpressure || status == net::send_status::backpressured;
    p.io.poll();
    EXPECT_LE(sender->queued_bytes(), k_cap + payload.size() * 2);
  }
  EXPECT_TRUE(saw_backpressure);
  EXPECT_EQ(status, net::send_status::dropped);
  EXPECT_NE(closed.find("peer is not reading"), std::string::npos) << closed;
  EXPECT_FALSE(sender->is_open());
}

TEST(LinkStream, RefusesAPeerOfAnotherProtocolVersionWithAClearReason) {
  socket_pair p;
  std::string closed;
  auto receiver = std::make_shared<link_stream>(std::move(p.server));
  receiver->start([](link::v2::Frame&, std::string_view) {},
                  [&](const std::string& why) { closed = why; });
  // What a version-1 peer sends first: a 4-byte length and a protobuf frame.
  asio::write(p.client, asio::buffer(std::string("\0\0\0\x04\x2a\x02\x08\x01", 8)));
  p.run_until([&] { return !closed.empty(); });
  EXPECT_NE(closed.find("does not speak gwx link protocol 2"), std::string::npos) << closed;
}

}  // namespace
}  // namespace gwx
