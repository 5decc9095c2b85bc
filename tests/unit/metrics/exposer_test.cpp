#include "common/metrics/exposer.hpp"

#include <arpa/inet.h>
#include <dirent.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "common/metrics/registry.hpp"
#include "tests/unit/registry/registry_test_support.hpp"

namespace gwx::metrics {
namespace {

using namespace std::chrono_literals;

// A plain blocking client with a receive timeout, so that a server bug fails the test instead of
// hanging it.
class raw_client {
 public:
  explicit raw_client(std::uint16_t port) : fd_(socket(AF_INET, SOCK_STREAM, 0)) {
    timeval timeout{5, 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  }
  ~raw_client() { close(fd_); }
  raw_client(const raw_client&) = delete;
  raw_client& operator=(const raw_client&) = delete;

  bool connected() const { return connected_; }

  void send_all(const std::string& bytes) {
    std::size_t sent = 0;
    while (sent < bytes.size()) {
      const auto n = ::send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
      ASSERT_GT(n, 0) << "send failed";
      sent += static_cast<std::size_t>(n);
    }
  }

  // Reads until the server closes; fails the test on a receive timeout.
  std::string read_to_end() {
    std::string out;
    char buffer[4096];
    while (true) {
      const auto n = recv(fd_, buffer, sizeof buffer, 0);
      if (n > 0) {
        out.append(buffer, static_cast<std::size_t>(n));
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        ADD_FAILURE() << "server did not close the connection within 5 s; got: " << out;
      }
      return out;
    }
  }

 private:
  int fd_;
  bool connected_ = false;
};

std::string exchange(std::uint16_t port, const std::string& request) {
  raw_client client(port);
  EXPECT_TRUE(client.connected());
  client.send_all(request);
  return client.read_to_end();
}

std::string body_of(const std::string& response) {
  const auto end = response.find("\r\n\r\n");
  return end == std::string::npos ? std::string() : response.substr(end + 4);
}

class MetricsExposer : public ::testing::Test {
 protected:
  MetricsExposer() {
    reg_.add_counter("gwx_test_requests_total", "Requests.", {"code"}).with({"200"}).inc(42);
    reg_.add_gauge("gwx_test_open", "Open.").with().set(3);
  }

  registry reg_;
};

TEST_F(MetricsExposer, ServesMetricsOnAnEphemeralPort) {
  exposer server(reg_, parse_host_port("127.0.0.1:0"));
  ASSERT_NE(server.port(), 0);
  EXPECT_EQ(server.address(), "127.0.0.1:" + std::to_string(server.port()));

  const auto response =
      exchange(server.port(), "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n");
  EXPECT_TRUE(response.starts_with("HTTP/1.1 200 OK\r\n")) << response;
  EXPECT_NE(response.find("\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"),
            std::string::npos);
  const auto body = body_of(response);
  EXPECT_EQ(body, reg_.expose());
  EXPECT_NE(response.find("\r\nContent-Length: " + std::to_string(body.size()) + "\r\n"),
            std::string::npos);
  EXPECT_NE(body.find("gwx_test_requests_total{code=\"200\"} 42\n"), std::string::npos);
}

TEST_F(MetricsExposer, EachScrapeSeesCurrentValues) {
  exposer server(reg_, parse_host_port("127.0.0.1:0"));
  auto open = reg_.add_gauge("gwx_test_open", "Open.").with();
  open.set(11);
  EXPECT_NE(
      body_of(exchange(server.port(), "GET /metrics HTTP/1.0\r\n\r\n")).find("gwx_test_open 11\n"),
      std::string::npos);
  open.set(12);
  EXPECT_NE(
      body_of(exchange(server.port(), "GET /metrics HTTP/1.0\r\n\r\n")).find("gwx_test_open 12\n"),
      std::string::npos);
}

TEST_F(MetricsExposer, HeadHasHeadersOnly) {
  exposer server(reg_, parse_host_port("127.0.0.1:0"));
  const auto response = exchange(server.port(), "HEAD /metrics HTTP/1.1\r\n\r\n");
  EXPECT_TRUE(response.starts_with("HTTP/1.1 200 OK\r\n")) << response;
  EXPECT_TRUE(response.ends_with("\r\n\r\n")) << response;
  EXPECT_NE(response.find("Content-Length: " + std::to_string(reg_.expose().size())),
            std::string::npos);
}

TEST_F(MetricsExposer, OtherPathsAre404AndOtherMethods405) {
  exposer server(reg_, parse_host_port("127.0.0.1:0"));
  EXPECT_TRUE(exchange(server.port(), "GET / HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404 "));
  EXPECT_TRUE(
      exchange(server.port(), "GET /metricsx HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404 "));
  EXPECT_TRUE(
      exchange(server.port(), "POST /nothing HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404 "));
  const auto post =
      exchange(server.port(), "POST /metrics HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello");
  EXPECT_TRUE(post.starts_with("HTTP/1.1 405 Method Not Allowed\r\n")) << post;
  EXPECT_NE(post.find("\r\nAllow: GET, HEAD\r\n"), std::string::npos);
  EXPECT_EQ(body_of(post).find("gwx_test"), std::string::npos);
}

TEST_F(MetricsExposer, GarbageGets400AndIsClosed) {
  exposer server(reg_, parse_host_port("127.0.0.1:0"));
  const auto tls_hello = std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11);
  const auto response = exchange(server.port(), tls_hello);
  EXPECT_TRUE(response.starts_with("HTTP/1.1 400 Bad Request\r\n")) << response;
  EXPECT_TRUE(
      exchange(server.port(), "GET /metrics HTTP/9.9\r\n\r\n").starts_with("HTTP/1.1 505 "));
  // The server is still fine afterwards.
  EXPECT_TRUE(
      exchange(server.port(), "GET /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 200 "));
}

TEST_F(MetricsExposer, OversizedRequestGets431) {
  exposer_options options;
  options.max_request_head = 1024;
  exposer server(reg_, parse_host_port("127.0.0.1:0"), options);
  const auto response = exchange(
      server.port(), "GET /metrics HTTP/1.1\r\nX-Pad: " + std::string(4000, 'a') + "\r\n\r\n");
  EXPECT_TRUE(response.starts_with("HTTP/1.1 431 ")) << response;
}

TEST_F(MetricsExposer, SilentAndSlowClientsAreClosedAtTheDeadline) {
  exposer_options options;
  options.timeout = 300ms;
  exposer server(reg_, parse_host_port("127.0.0.1:0"), options);
  {
    raw_client silent(server.port());
    ASSERT_TRUE(silent.connected());
    EXPECT_EQ(silent.read_to_end(), "");  // closed by the server, within the 5 s read timeout
  }
  {
    raw_client slow(server.port());
    ASSERT_TRUE(slow.connected());
    slow.send_all("GET /metr");
    EXPECT_EQ(slow.read_to_end(), "");
  }
}

TEST_F(MetricsExposer, AnIdleConnectionGivesWayToANewOne) {
  exposer_options options;
  options.max_connections = 1;
  options.timeout = 10min;  // only making room can let the second one in
  exposer server(reg_, parse_host_port("127.0.0.1:0"), options);
  raw_client idle(server.port());  // accepted first (the backlog is FIFO), then idles
  ASSERT_TRUE(idle.connected());
  raw_client scrape(server.port());
  ASSERT_TRUE(scrape.connected());
  scrape.send_all("GET /metrics HTTP/1.1\r\n\r\n");
  EXPECT_TRUE(scrape.read_to_end().starts_with("HTTP/1.1 200 "));
  EXPECT_EQ(idle.read_to_end(), "");  // closed by the server
}

TEST_F(MetricsExposer, FortyIdleConnectionsDoNotKeepAScrapeOut) {
  exposer_options options;
  options.timeout = 10min;  // idle sockets are not closed by their deadline during the test
  exposer server(reg_, parse_host_port("127.0.0.1:0"), options);
  std::vector<std::unique_ptr<raw_client>> idle;
  for (int i = 0; i < 40; ++i) {
    idle.push_back(std::make_unique<raw_client>(server.port()));
    ASSERT_TRUE(idle.back()->connected());
  }
  // Each scrape is accepted after every idle socket and answered long before any deadline (the
  // client gives up after 5 s).
  for (int i = 0; i < 3; ++i) {
    const auto response =
        exchange(server.port(), "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n");
    EXPECT_TRUE(response.starts_with("HTTP/1.1 200 OK\r\n")) << response;
    EXPECT_NE(body_of(response).find("gwx_test_requests_total{code=\"200\"} 42\n"),
              std::string::npos);
  }
}

// The highest descriptor this process has open.
int highest_fd() {
  int highest = 0;
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) {
    return -1;
  }
  while (const dirent* entry = readdir(dir)) {
    highest = std::max(highest, std::atoi(entry->d_name));
  }
  closedir(dir);
  return highest;
}

TEST_F(MetricsExposer, AcceptFailuresAtTheFileLimitAreLoggedOncePerInterval) {
  ::gwx::registry::test::log_capture logs;
  exposer_options options;
  options.accept_retry = 1ms;
  options.accept_error_log_interval = 1h;
  exposer server(reg_, parse_host_port("127.0.0.1:0"), options);

  // Fill every descriptor up to a low limit, then free one for the client's socket: the
  // connection completes in the kernel, but the exposer has no descriptor to accept it with.
  rlimit saved{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &saved), 0);
  const int top = highest_fd();
  ASSERT_GT(top, 0);
  rlimit low = saved;
  low.rlim_cur = static_cast<rlim_t>(top + 16);
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
  std::vector<int> fillers;
  for (int fd = dup(0); fd >= 0; fd = dup(0)) {
    fillers.push_back(fd);
  }
  ASSERT_FALSE(fillers.empty());
  close(fillers.back());
  fillers.pop_back();
  auto client = std::make_unique<raw_client>(server.port());
  const bool connected = client->connected();
  const bool failed_often =
      ::gwx::registry::test::eventually([&] { return server.accept_errors() >= 20; });
  for (const int fd : fillers) {
    close(fd);
  }
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &saved), 0);
  ASSERT_TRUE(connected);
  ASSERT_TRUE(failed_often) << "accept errors: " << server.accept_errors();

  EXPECT_EQ(logs.count({"metrics: accept failed"}), 1U) << logs.text();
  // With descriptors back, the waiting connection is accepted and answered.
  client->send_all("GET /metrics HTTP/1.1\r\n\r\n");
  EXPECT_TRUE(client->read_to_end().starts_with("HTTP/1.1 200 "));
}

TEST_F(MetricsExposer, BusyPortAndBadHostThrow) {
  exposer first(reg_, parse_host_port("127.0.0.1:0"));
  EXPECT_THROW(exposer(reg_, parse_host_port("127.0.0.1:" + std::to_string(first.port()))),
               std::runtime_error);
  EXPECT_THROW(exposer(reg_, parse_host_port("no-such-host.invalid:0")), std::runtime_error);
}

TEST_F(MetricsExposer, StopClosesTheListener) {
  exposer server(reg_, parse_host_port("127.0.0.1:0"));
  const auto port = server.port();
  server.stop();
  server.stop();  // idempotent
  raw_client client(port);
  EXPECT_FALSE(client.connected());
}

}  // namespace
}  // namespace gwx::metrics
