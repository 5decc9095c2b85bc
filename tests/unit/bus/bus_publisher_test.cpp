#include "common/bus/bus_publisher.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <future>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace gwx::bus {
namespace {

/// A TCP socket listening on 127.0.0.1 at a free port, which it sets in `port`.
int loopback_listener(std::uint16_t& port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), len), 0);
  EXPECT_EQ(::listen(fd, 8), 0);
  EXPECT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  port = ntohs(addr.sin_port);
  return fd;
}

/// A Redis stand-in on loopback: answers every PUBLISH with `reply` (an error reply, or a
/// count of receivers) and counts the connections it was given, one at a time.
class fake_redis {
 public:
  fake_redis() {
    listener_ = loopback_listener(port_);
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
  std::uint16_t port = 0;
  const int silent = loopback_listener(port);  // never accepted: the backlog completes the connect
  bus_publisher publisher(parse_bus_url("redis://127.0.0.1:" + std::to_string(port) + "/gwx.push"));
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

/// An AMQP 0-9-1 broker stand-in on loopback that takes one connection, answers the handshake
/// the publisher makes (login, channel.open, exchange.declare), then never reads again: a broker
/// that stopped taking messages with the connection still up.
class amqp_broker_that_stops_reading {
 public:
  amqp_broker_that_stops_reading() {
    listener_ = loopback_listener(port_);
    thread_ = std::thread([this] { serve(); });
  }
  ~amqp_broker_that_stops_reading() {
    ::shutdown(listener_, SHUT_RDWR);  // ends an accept still waiting
    hang_up();
    thread_.join();
    hang_up();
    ::close(listener_);
  }

  std::uint16_t port() const { return port_; }
  /// Whether the handshake was answered (the broker reads nothing from then on).
  bool stalled() const { return stalled_.load(); }
  /// Closes the connection (unblocks a publisher stuck on it).
  void hang_up() {
    std::lock_guard lock(mutex_);
    if (conn_ >= 0) {
      ::close(conn_);
      conn_ = -1;
    }
  }

 private:
  static void put16(std::string& out, std::uint16_t v) {
    out.push_back(static_cast<char>(v >> 8));
    out.push_back(static_cast<char>(v & 0xff));
  }
  static void put32(std::string& out, std::uint32_t v) {
    put16(out, static_cast<std::uint16_t>(v >> 16));
    put16(out, static_cast<std::uint16_t>(v & 0xffff));
  }
  static void put_longstr(std::string& out, std::string_view s) {
    put32(out, static_cast<std::uint32_t>(s.size()));
    out.append(s);
  }
  void send_method(int fd, std::uint16_t channel, std::uint16_t cls, std::uint16_t method,
                   const std::string& args) {
    std::string payload;
    put16(payload, cls);
    put16(payload, method);
    payload += args;
    std::string frame(1, '\x01');
    put16(frame, channel);
    put32(frame, static_cast<std::uint32_t>(payload.size()));
    frame += payload;
    frame.push_back('\xce');
    EXPECT_EQ(::send(fd, frame.data(), frame.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(frame.size()));
  }
  static bool read_exactly(int fd, char* out, std::size_t n) {
    while (n > 0) {
      const auto got = ::recv(fd, out, n, 0);
      if (got <= 0) {
        return false;
      }
      out += got;
      n -= static_cast<std::size_t>(got);
    }
    return true;
  }

  void serve() {
    const int fd = ::accept(listener_, nullptr, nullptr);
    {
      std::lock_guard lock(mutex_);
      conn_ = fd;
    }
    char header[8];
    if (fd < 0 || !read_exactly(fd, header, sizeof header)) {
      return;
    }
    std::string start;
    start.push_back('\0');  // version 0-9
    start.push_back('\x09');
    put32(start, 0);  // no server properties
    put_longstr(start, "PLAIN");
    put_longstr(start, "en_US");
    send_method(fd, 0, 10, 10, start);
    for (;;) {
      char head[7];
      if (!read_exactly(fd, head, sizeof head)) {
        return;
      }
      const auto size = (std::uint32_t(std::uint8_t(head[3])) << 24) |
                        (std::uint32_t(std::uint8_t(head[4])) << 16) |
                        (std::uint32_t(std::uint8_t(head[5])) << 8) | std::uint8_t(head[6]);
      std::string body(size + 1, '\0');  // with the frame end
      if (!read_exactly(fd, body.data(), body.size()) || head[0] != 1 || size < 4) {
        return;
      }
      const auto cls = std::uint16_t((std::uint8_t(body[0]) << 8) | std::uint8_t(body[1]));
      const auto method = std::uint16_t((std::uint8_t(body[2]) << 8) | std::uint8_t(body[3]));
      if (cls == 10 && method == 11) {  // start-ok: tune (no channel limit, 128 KiB frames)
        std::string tune;
        put16(tune, 0);
        put32(tune, 131072);
        put16(tune, 0);
        send_method(fd, 0, 10, 30, tune);
      } else if (cls == 10 && method == 40) {  // connection.open: open-ok
        send_method(fd, 0, 10, 41, std::string(1, '\0'));
      } else if (cls == 20 && method == 10) {  // channel.open: open-ok
        std::string ok;
        put32(ok, 0);
        send_method(fd, 1, 20, 11, ok);
      } else if (cls == 40 && method == 10) {  // exchange.declare: declare-ok, then no reads
        send_method(fd, 1, 40, 11, {});
        stalled_ = true;
        return;
      }
    }
  }

  int listener_ = -1;
  std::uint16_t port_ = 0;
  std::mutex mutex_;
  int conn_ = -1;
  std::atomic<bool> stalled_{false};
  std::thread thread_;
};

// An AMQP broker that stops reading once linked: the publisher's send blocks when the socket
// buffers are full, and stop() still returns at its flush deadline (plus a moment), dropping
// what the broker did not take. Before, the bus thread stayed in that send and stop() never
// returned.
TEST(bus_publisher, stop_returns_at_the_flush_deadline_against_an_amqp_broker_that_stops_reading) {
  amqp_broker_that_stops_reading broker;
  bus_publisher publisher(
      parse_bus_url("amqp://guest:guest@127.0.0.1:" + std::to_string(broker.port()) +
                    "/%2F?exchange=gwx&mode=fanout"),
      256 << 20);
  publisher.start();
  // ~64 MB: far more than the sockets of both ends hold.
  std::vector<bus_publication> big;
  for (int i = 0; i < 2000; ++i) {
    big.push_back(bus_publication{"", "{\"m\":\"" + std::string(32 * 1024, 'x') + "\"}"});
  }
  ASSERT_TRUE(publisher.publish(std::move(big)));
  EXPECT_FALSE(publisher.flush(std::chrono::seconds(1)));
  ASSERT_TRUE(broker.stalled());
  const auto start = std::chrono::steady_clock::now();
  auto stopped = std::async(std::launch::async,
                            [&publisher] { publisher.stop(std::chrono::milliseconds(200)); });
  const bool in_time = stopped.wait_for(std::chrono::seconds(3)) == std::future_status::ready;
  EXPECT_TRUE(in_time) << "stop() still waiting for the broker";
  if (!in_time) {
    broker.hang_up();  // lets the publisher go, so the test can end
  }
  stopped.wait();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
  EXPECT_EQ(publisher.published() + publisher.dropped(), 2000U);
  EXPECT_GT(publisher.dropped(), 0U);
}

}  // namespace
}  // namespace gwx::bus
