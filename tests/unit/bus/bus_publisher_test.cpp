#include "common/bus/bus_publisher.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace gwx::bus {
namespace {

/// A Redis stand-in on loopback: answers every PUBLISH with `reply` (an error reply, or a
/// count of receivers) and counts the connections it was given, one at a time.
class fake_redis {
 public:
  fake_redis() {
    listener_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    EXPECT_EQ(::bind(listener_, reinterpret_cast<sockaddr*>(&addr), len), 0);
    EXPECT_EQ(::listen(listener_, 8), 0);
    EXPECT_EQ(::getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len), 0);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~fake_redis() {
    stop_ = true;
    thread_.join();
    ::close(listener_);
  }

  std::uint16_t port() const { return port_; }
  int connections() const { return connections_.load(); }
  void answer(std::string reply) {
    std::lock_guard lock(mutex_);
    reply_ = std::move(reply);
  }

 private:
  // Waits up to 50 ms for `fd` to be readable; false when it is not (or stopping).
  bool readable(int fd) const {
    pollfd p{fd, POLLIN, 0};
    return !stop_ && ::poll(&p, 1, 50) == 1;
  }

  void serve() {
    while (!stop_) {
      if (!readable(listener_)) {
        continue;
      }
      const int fd = ::accept(listener_, nullptr, nullptr);
      if (fd < 0) {
        continue;
      }
      ++connections_;
      std::string in;
      std::size_t scanned = 0;
      char buf[4096];
      for (;;) {
        if (!readable(fd)) {
          if (stop_) {
            break;
          }
          continue;
        }
        const auto n = ::read(fd, buf, sizeof(buf));
        if (n <= 0) {
          break;
        }
        in.append(buf, static_cast<std::size_t>(n));
        constexpr std::string_view k_publish = "PUBLISH\r\n";
        for (auto at = in.find(k_publish, scanned); at != std::string::npos;
             at = in.find(k_publish, scanned)) {
          scanned = at + k_publish.size();
          std::string reply;
          {
            std::lock_guard lock(mutex_);
            reply = reply_;
          }
          EXPECT_EQ(::write(fd, reply.data(), reply.size()), static_cast<ssize_t>(reply.size()));
        }
      }
      ::close(fd);
    }
  }

  int listener_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> connections_{0};
  std::mutex mutex_;
  std::string reply_ = ":1\r\n";
  std::thread thread_;
};

std::vector<bus_publication> messages(int n) {
  std::vector<bus_publication> out;
  for (int i = 0; i < n; ++i) {
    out.push_back({"all", R"({"op":"send_to_all","data":"m)" + std::to_string(i) + R"("})"});
  }
  return out;
}

TEST(bus_publisher, a_publish_the_broker_refuses_is_dropped_and_the_connection_made_again) {
  fake_redis redis;
  redis.answer("-NOPERM this user has no permissions to access one of the channels\r\n");
  bus_publisher publisher(
      parse_bus_url("redis://127.0.0.1:" + std::to_string(redis.port()) + "/gwx.push"));
  publisher.start();
  ASSERT_TRUE(publisher.publish(messages(3)));
  ASSERT_TRUE(publisher.flush(std::chrono::seconds(10)));
  // Refused: not published (an error reply was counted as published before).
  EXPECT_EQ(publisher.published(), 0U);
  EXPECT_EQ(publisher.dropped(), 3U);

  // The permission granted meanwhile: the next messages go out on a new connection.
  redis.answer(":2\r\n");
  ASSERT_TRUE(publisher.publish(messages(2)));
  ASSERT_TRUE(publisher.flush(std::chrono::seconds(10)));
  EXPECT_EQ(publisher.published(), 2U);
  EXPECT_EQ(publisher.dropped(), 3U);
  EXPECT_EQ(redis.connections(), 2);
  publisher.stop();
}

// A broker that takes connections but answers nothing (a stopped Redis: the kernel still
// accepts): stop() gives up at its flush deadline and drops what is left, instead of sending
// the queue batch by batch with a 5 s reply timeout each (1,000 messages: ~20 s before).
TEST(bus_publisher, stop_drops_what_a_silent_broker_did_not_take_by_the_flush_deadline) {
  const int silent = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(::bind(silent, reinterpret_cast<sockaddr*>(&addr), len), 0);
  ASSERT_EQ(::listen(silent, 8), 0);  // never accepted: the backlog completes the connect
  ASSERT_EQ(::getsockname(silent, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  bus_publisher publisher(
      parse_bus_url("redis://127.0.0.1:" + std::to_string(ntohs(addr.sin_port)) + "/gwx.push"));
  publisher.start();
  ASSERT_TRUE(publisher.publish(messages(1000)));
  const auto start = std::chrono::steady_clock::now();
  publisher.stop(std::chrono::milliseconds(200));
  const auto took = std::chrono::steady_clock::now() - start;
  // The flush deadline, plus the batch already waiting for its reply (5 s at most).
  EXPECT_LT(took, std::chrono::seconds(8));
  EXPECT_EQ(publisher.published(), 0U);
  EXPECT_EQ(publisher.dropped(), 1000U);
  ::close(silent);
}

}  // namespace
}  // namespace gwx::bus
