#include "common/net/link_stream.hpp"

#include <gtest/gtest.h>

#include <asio.hpp>
#include <chrono>

namespace gwx {
namespace {

using namespace std::chrono_literals;

// Many frames arriving faster than they are read fill the read buffer past half its size in one
// read; consuming them must keep the buffer usable (this once threw std::length_error).
TEST(LinkStream, DeliversABurstOfFramesInOrder) {
  asio::io_context io;
  asio::ip::tcp::acceptor acceptor(io, {asio::ip::make_address("127.0.0.1"), 0});
  asio::ip::tcp::socket client(io);
  client.connect(acceptor.local_endpoint());
  auto server_socket = acceptor.accept();

  std::string closed;
  std::vector<std::uint64_t> ids;
  auto receiver = std::make_shared<link_stream>(std::move(server_socket));
  auto sender = std::make_shared<link_stream>(std::move(client));
  sender->start([](link::v1::Frame&) {}, [](const std::string&) {});

  constexpr std::uint64_t k_frames = 20000;
  // Queue everything before the receiver reads anything, so its reads come back full.
  for (std::uint64_t i = 0; i < k_frames; ++i) {
    link::v1::Frame ev;
    ev.mutable_event()->set_event_id(i);
    ev.mutable_event()->set_payload(std::string(100, 'x'));
    sender->send(ev);
  }
  receiver->start([&](link::v1::Frame& fr) { ids.push_back(fr.event().event_id()); },
                  [&](const std::string& why) { closed = why; });
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (ids.size() < k_frames && closed.empty() && std::chrono::steady_clock::now() < deadline) {
    io.run_for(10ms);
  }
  EXPECT_EQ(closed, "");
  ASSERT_EQ(ids.size(), k_frames);
  for (std::uint64_t i = 0; i < k_frames; ++i) {
    ASSERT_EQ(ids[i], i);
  }
}

}  // namespace
}  // namespace gwx
