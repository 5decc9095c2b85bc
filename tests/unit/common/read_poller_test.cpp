#include "common/net/read_poller.hpp"

#include <gtest/gtest.h>

#include <asio.hpp>
#include <cerrno>
#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "tests/unit/common/socket_pair.hpp"

namespace gwx::net {
namespace {

using test_io::socket_pair;

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

// A loop with its poller and one socket pair, whose tested side `t` watches.
class ReadPoller : public ::testing::Test {
 protected:
  // Runs the loop's ready handlers for a moment: each turn reads the set once.
  void turn() {
    io.restart();
    io.run_for(std::chrono::milliseconds(20));
  }
  void watch() { ASSERT_TRUE(poller.watch(t, p.fd[0])); }

  asio::io_context io;
  read_poller<target> poller{io};
  socket_pair p;
  target t;
};

TEST_F(ReadPoller, ReportsAWatchedSocketWhileItHoldsUnreadBytes) {
  watch();
  turn();
  EXPECT_EQ(t.ready, 0);  // nothing to read yet

  p.send_to_tested("hello world");
  turn();
  EXPECT_GE(t.ready, 1);
  // Level-triggered: still reported while bytes are left, with no re-arm by the target.
  EXPECT_EQ(p.read(0, 5), "hello");
  const int after_partial = t.ready;
  turn();
  EXPECT_GT(t.ready, after_partial);
  EXPECT_EQ(p.read(0, 100), " world");
  const int drained = t.ready;
  turn();
  EXPECT_EQ(t.ready, drained);  // drained: quiet

  p.send_to_tested("again");  // watched all along: new bytes are reported
  turn();
  EXPECT_GT(t.ready, drained);
  EXPECT_EQ(p.read(0, 100), "again");
}

TEST_F(ReadPoller, AForgottenSocketIsNoLongerReported) {
  watch();
  poller.forget(t, p.fd[0]);
  p.send_to_tested("unread");
  turn();
  EXPECT_EQ(t.ready, 0);
  watch();  // and can be watched again
  turn();
  EXPECT_GE(t.ready, 1);
}

TEST_F(ReadPoller, ATargetForgottenDuringATurnGetsNoMoreOfThatTurnsEvents) {
  socket_pair q;
  target u;
  watch();
  ASSERT_TRUE(poller.watch(u, q.fd[0]));
  // Whichever is reported first forgets the other (as a session closing another would),
  // whose event was taken from the set in the same turn.
  t.on_ready = [&] { poller.forget(u, q.fd[0]); };
  u.on_ready = [&] { poller.forget(t, p.fd[0]); };
  p.send_to_tested("x");
  q.send_to_tested("y");
  io.restart();
  io.run_one_for(std::chrono::milliseconds(200));  // exactly one turn: one read of the set
  EXPECT_EQ(t.ready + u.ready, 1);
}

TEST_F(ReadPoller, TheAfterTurnHookRunsOnceAfterEveryReportedTargetOfTheTurn) {
  socket_pair q;
  target u;
  watch();
  ASSERT_TRUE(poller.watch(u, q.fd[0]));
  std::vector<int> seen_at_hook;  // targets reported before each run of the hook
  poller.after_each_turn([&] { seen_at_hook.push_back(t.ready + u.ready); });
  turn();
  EXPECT_TRUE(seen_at_hook.empty());  // a turn with nothing reported does not run it
  p.send_to_tested("x");
  q.send_to_tested("y");
  io.restart();
  io.run_one_for(std::chrono::milliseconds(200));  // one turn, both reported in it
  EXPECT_EQ(seen_at_hook, std::vector<int>{2});
}

TEST_F(ReadPoller, WatchingABadDescriptorFailsWithErrno) {
  errno = 0;
  EXPECT_FALSE(poller.watch(t, -1));
  EXPECT_EQ(errno, EBADF);
}

}  // namespace
}  // namespace gwx::net
