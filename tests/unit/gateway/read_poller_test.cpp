#include "gateway/read_poller.hpp"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <asio.hpp>
#include <cerrno>
#include <chrono>
#include <functional>
#include <string>

namespace gwx::gateway {
namespace {

// A connected pair of non-blocking stream sockets: `fd[0]` watched, `fd[1]` the peer.
struct socket_pair {
  int fd[2] = {-1, -1};
  socket_pair() {
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fd), 0);
  }
  ~socket_pair() {
    ::close(fd[0]);
    ::close(fd[1]);
  }
  socket_pair(const socket_pair&) = delete;
  socket_pair& operator=(const socket_pair&) = delete;
  void send(const std::string& s) const {
    ASSERT_EQ(::send(fd[1], s.data(), s.size(), 0), static_cast<ssize_t>(s.size()));
  }
  std::string read(std::size_t most) const {
    std::string buf(most, '\0');
    const ssize_t n = ::recv(fd[0], buf.data(), most, MSG_DONTWAIT);
    buf.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
    return buf;
  }
};

struct target {
  int ready = 0;
  std::function<void()> on_ready;
  void on_poll_ready() {
    ++ready;
    if (on_ready) {
      on_ready();
    }
  }
};

// Runs the loop's ready handlers for a moment: each turn reads the set once.
void turn(asio::io_context& io) {
  io.restart();
  io.run_for(std::chrono::milliseconds(20));
}

TEST(ReadPoller, ReportsAWatchedSocketWhileItHoldsUnreadBytes) {
  asio::io_context io;
  read_poller<target> poller(io);
  socket_pair p;
  target t;
  ASSERT_TRUE(poller.watch(t, p.fd[0]));
  turn(io);
  EXPECT_EQ(t.ready, 0);  // nothing to read yet

  p.send("hello world");
  turn(io);
  EXPECT_GE(t.ready, 1);
  // Level-triggered: still reported while bytes are left, with no re-arm by the target.
  EXPECT_EQ(p.read(5), "hello");
  const int after_partial = t.ready;
  turn(io);
  EXPECT_GT(t.ready, after_partial);
  EXPECT_EQ(p.read(100), " world");
  const int drained = t.ready;
  turn(io);
  EXPECT_EQ(t.ready, drained);  // drained: quiet

  p.send("again");  // watched all along: new bytes are reported
  turn(io);
  EXPECT_GT(t.ready, drained);
  EXPECT_EQ(p.read(100), "again");
}

TEST(ReadPoller, AForgottenSocketIsNoLongerReported) {
  asio::io_context io;
  read_poller<target> poller(io);
  socket_pair p;
  target t;
  ASSERT_TRUE(poller.watch(t, p.fd[0]));
  poller.forget(t, p.fd[0]);
  p.send("unread");
  turn(io);
  EXPECT_EQ(t.ready, 0);
  ASSERT_TRUE(poller.watch(t, p.fd[0]));  // and can be watched again
  turn(io);
  EXPECT_GE(t.ready, 1);
}

TEST(ReadPoller, ATargetForgottenDuringATurnGetsNoMoreOfThatTurnsEvents) {
  asio::io_context io;
  read_poller<target> poller(io);
  socket_pair a;
  socket_pair b;
  target ta;
  target tb;
  ASSERT_TRUE(poller.watch(ta, a.fd[0]));
  ASSERT_TRUE(poller.watch(tb, b.fd[0]));
  // Whichever is reported first forgets the other (as a session closing another would),
  // whose event was taken from the set in the same turn.
  ta.on_ready = [&] { poller.forget(tb, b.fd[0]); };
  tb.on_ready = [&] { poller.forget(ta, a.fd[0]); };
  a.send("x");
  b.send("y");
  io.restart();
  io.run_one_for(std::chrono::milliseconds(200));  // exactly one turn: one read of the set
  EXPECT_EQ(ta.ready + tb.ready, 1);
}

TEST(ReadPoller, WatchingABadDescriptorFailsWithErrno) {
  asio::io_context io;
  read_poller<target> poller(io);
  target t;
  errno = 0;
  EXPECT_FALSE(poller.watch(t, -1));
  EXPECT_EQ(errno, EBADF);
}

}  // namespace
}  // namespace gwx::gateway
