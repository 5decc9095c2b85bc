// Component test: max_handshakes_per_ip on a real gateway_server in-process, driven by plain
// blocking TCP clients. Each way a handshake ends must give its address's place back exactly
// once: the limit is probed again after each.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>

#include <array>
#include <asio.hpp>
#include <cerrno>
#include <cstring>
#include <functional>
#include <string>
#include <thread>

#include "gateway/gateway_server.hpp"

namespace gwx::gateway {
namespace {

using namespace std::chrono_literals;

constexpr std::size_t k_limit = 2;
constexpr auto k_handshake_timeout = 300ms;

class HandshakeLimitTest : public ::testing::Test {
 protected:
  void SetUp() override {
    gateway_config cfg;
    cfg.registers = {{"127.0.0.1", 1}};  // unreachable: the gateway serves regardless
    cfg.internal = {"127.0.0.1", 0};
    cfg.secret = "test-secret";
    cfg.name = "gw-test";
    cfg.threads = 2;
    cfg.listeners.push_back(parse_listener_url(
        "ws://127.0.0.1:0/?max_handshakes_per_ip=" + std::to_string(k_limit) +
            "&handshake_timeout_ms=" + std::to_string(k_handshake_timeout.count()),
        listener_config{}));
    server_ = std::make_unique<gateway_server>(std::move(cfg));
    server_->start();
    const auto url = server_->bound_urls()[0];
    const auto colon = url.rfind(':');
    port_ = static_cast<std::uint16_t>(std::stoi(url.substr(colon + 1, url.find('/', colon))));
  }

  void TearDown() override { server_->stop(); }

  /// A connection from `source` that sends nothing (yet).
  asio::ip::tcp::socket connect(const char* source = "127.0.0.1") {
    asio::ip::tcp::socket s(io_);
    s.open(asio::ip::tcp::v4());
    s.bind({asio::ip::make_address(source), 0});
    s.connect({asio::ip::make_address("127.0.0.1"), port_});
    return s;
  }

  static std::string upgrade_request() {
    return "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
  }

  /// Reads until `done(what was read)`, the gateway's close (`closed` set) or 5 s (a test
  /// failure: a gateway that never answers fails the test instead of hanging it).
  static std::string read(asio::ip::tcp::socket& s,
                          const std::function<bool(const std::string&)>& done, bool& closed) {
    std::string out;
    closed = false;
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    std::array<char, 4096> buf{};
    while (!done(out)) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        ADD_FAILURE() << "nothing more within 5 s after " << out;
        break;
      }
      pollfd p{s.native_handle(), POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) {
        continue;  // interrupted, or the deadline (checked above)
      }
      const auto n = ::recv(s.native_handle(), buf.data(), buf.size(), 0);
      if (n > 0) {
        out.append(buf.data(), static_cast<std::size_t>(n));
      } else if (n == 0) {
        closed = true;
        break;
      } else if (errno != EINTR && errno != EAGAIN) {
        ADD_FAILURE() << "read failed: " << std::strerror(errno) << " after " << out;
        break;
      }
    }
    return out;
  }

  /// Everything the gateway sends until it closes.
  static std::string read_to_end(asio::ip::tcp::socket& s) {
    bool closed = false;
    auto out = read(
        s, [](const std::string&) { return false; }, closed);
    EXPECT_TRUE(closed) << "got " << out;
    return out;
  }

  /// The status line of the answer to an upgrade sent on `s` (read up to the blank line).
  static std::string upgrade(asio::ip::tcp::socket& s) {
    asio::write(s, asio::buffer(upgrade_request()));
    bool closed = false;
    const auto head = read(
        s, [](const std::string& in) { return in.find("\r\n\r\n") != std::string::npos; }, closed);
    return head.substr(0, head.find("\r\n"));
  }

  /// Whether a new connection from `source` gets its upgrade answered with 101 (vs 503).
  std::string probe(const char* source = "127.0.0.1") {
    auto s = connect(source);
    return upgrade(s);
  }

  asio::io_context io_;
  std::unique_ptr<gateway_server> server_;
  std::uint16_t port_ = 0;
};

constexpr const char* k_ok = "HTTP/1.1 101 Switching Protocols";
constexpr const char* k_refused = "HTTP/1.1 503 Service Unavailable";

TEST_F(HandshakeLimitTest, SilentConnectionsFillTheirAddressOnlyAndARefusalTakesNothing) {
  auto a = connect();
  auto b = connect();
  EXPECT_EQ(probe(), k_refused);
  EXPECT_EQ(probe(), k_refused);  // the refusals held no place
  EXPECT_EQ(probe("127.0.0.2"), k_ok);
  auto c = connect("127.0.0.2");
  auto d = connect("127.0.0.2");
  EXPECT_EQ(probe("127.0.0.2"), k_refused);
  EXPECT_EQ(probe("127.0.0.3"), k_ok);
}

TEST_F(HandshakeLimitTest, AFinishedUpgradeGivesItsPlaceBackAtOnce) {
  auto a = connect();
  auto b = connect();
  EXPECT_EQ(probe(), k_refused);
  EXPECT_EQ(upgrade(a), k_ok);  // a is open now, and no longer counted
  auto c = connect();
  EXPECT_EQ(probe(), k_refused);  // b and c
  EXPECT_EQ(upgrade(b), k_ok);
  EXPECT_EQ(upgrade(c), k_ok);
  EXPECT_EQ(probe(), k_ok);  // three open from 127.0.0.1: open ones do not count
}

TEST_F(HandshakeLimitTest, EveryEndOfAnUnfinishedHandshakeGivesItsPlaceBack) {
  for (int round = 0; round < 2; ++round) {
    // The client closes: its place comes back once the gateway sees the close.
    auto a = connect();
    auto b = connect();
    EXPECT_EQ(probe(), k_refused);
    a.close();
    std::string status;
    for (int i = 0; i < 200 && status != k_ok; ++i) {
      std::this_thread::sleep_for(10ms);
      status = probe();
    }
    ASSERT_EQ(status, k_ok) << "round " << round << ": a closed connection kept its place";
    // A protocol error: a malformed request gets a 400 and is closed (b and bad held).
    auto bad = connect();
    EXPECT_EQ(probe(), k_refused);
    asio::write(bad, asio::buffer(std::string("GET\r\n\r\n")));
    EXPECT_EQ(read_to_end(bad).substr(0, 12), "HTTP/1.1 400");
    EXPECT_EQ(probe(), k_ok) << "round " << round << ": a refused upgrade kept its place";
    // The handshake timeout closes both silent ones (b and late): both places come back.
    auto late = connect();
    EXPECT_EQ(probe(), k_refused);
    EXPECT_EQ(read_to_end(b), "");
    EXPECT_EQ(read_to_end(late), "");
    auto x = connect();
    EXPECT_EQ(probe(), k_ok) << "round " << round << ": a timed-out connection kept its place";
    auto y = connect();
    EXPECT_EQ(probe(), k_refused) << "round " << round << ": more than " << k_limit << " places";
    // x and y time out too: the next round starts from an empty count.
    EXPECT_EQ(read_to_end(x), "");
    EXPECT_EQ(read_to_end(y), "");
  }
}

}  // namespace
}  // namespace gwx::gateway
