#include "common/net/batched_io.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "tests/unit/common/socket_pair.hpp"

namespace gwx::net {
namespace {

using test_io::socket_pair;

// Fills `p`'s tested side until it takes nothing more.
void fill(const test_io::socket_pair& p) {
  const int small = 4096;
  ::setsockopt(p.fd[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
  const std::string chunk(4096, 'f');
  while (::send(p.fd[0], chunk.data(), chunk.size(), MSG_DONTWAIT) > 0) {
  }
}

// Whether this machine lets processes use io_uring at all (kernel.io_uring_disabled, Linux 6.6+:
// 0 allowed, 1 only for a group, 2 never; the file is absent on older kernels, which allow it).
bool io_uring_allowed() {
  std::ifstream f("/proc/sys/kernel/io_uring_disabled");
  int disabled = 0;
  return !(f >> disabled) || disabled == 0;
}

using results = std::vector<std::pair<std::uint64_t, long>>;

results run(batched_io& s) {
  results r;
  s.run([&](std::uint64_t tag, long result) { r.emplace_back(tag, result); });
  return r;
}

class BatchedIo : public ::testing::TestWithParam<bool> {};

INSTANTIATE_TEST_SUITE_P(Modes, BatchedIo, ::testing::Values(true, false),
                         [](const auto& info) { return info.param ? "io_uring" : "syscalls"; });

TEST_P(BatchedIo, UsesTheRingWhenAskedAndTheKernelAllowsIt) {
  batched_io s(GetParam());
  if (!GetParam()) {
    EXPECT_FALSE(s.batched());
    EXPECT_EQ(s.why_not_batched(), "");
    return;
  }
  if (io_uring_allowed()) {
    EXPECT_TRUE(s.batched()) << s.why_not_batched();
  } else {
    EXPECT_FALSE(s.batched());
    EXPECT_NE(s.why_not_batched(), "");
  }
}

TEST_P(BatchedIo, SendsEveryListedBufferAndReportsEachInOrder) {
  batched_io s(GetParam());
  socket_pair a;
  socket_pair b;
  const std::string one = "single buffer";
  const std::string parts[] = {"gathered ", "from ", "three"};
  const asio::const_buffer gathered[] = {asio::buffer(parts[0]), asio::buffer(parts[1]),
                                         asio::buffer(parts[2])};
  s.add_send(a.fd[0], asio::buffer(one), 7);
  s.add_send(b.fd[0], gathered, 3, 9);
  s.add_send(a.fd[0], asio::buffer(one), 11);  // the same socket twice: in the order listed
  EXPECT_EQ(s.size(), 3U);
  EXPECT_EQ(run(s), (results{{7, 13}, {9, 19}, {11, 13}}));
  EXPECT_EQ(s.size(), 0U);
  EXPECT_EQ(a.read_all_at_peer(), one + one);
  EXPECT_EQ(b.read_all_at_peer(), "gathered from three");
  EXPECT_TRUE(run(s).empty());  // nothing left over
}

TEST_P(BatchedIo, AFullSocketTakesNothingAndOthersAreNotHeldUp) {
  batched_io s(GetParam());
  socket_pair full;
  socket_pair free;
  fill(full);
  const std::string msg = "hello";
  s.add_send(full.fd[0], asio::buffer(msg), 1);
  s.add_send(free.fd[0], asio::buffer(msg), 2);
  const auto r = run(s);
  ASSERT_EQ(r.size(), 2U);
  EXPECT_EQ(r[0].first, 1U);
  EXPECT_TRUE(r[0].second == -EAGAIN || r[0].second == -EWOULDBLOCK) << r[0].second;
  EXPECT_EQ(r[1], (std::pair<std::uint64_t, long>{2, 5}));
  EXPECT_EQ(free.read_all_at_peer(), msg);
}

TEST_P(BatchedIo, APartialSendReportsWhatTheSocketTook) {
  batched_io s(GetParam());
  socket_pair p;
  const int small = 4096;
  ::setsockopt(p.fd[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
  std::string big(1 << 20, 'x');
  for (std::size_t i = 0; i < big.size(); ++i) {
    big[i] = static_cast<char>('a' + i % 26);
  }
  s.add_send(p.fd[0], asio::buffer(big), 3);
  const auto r = run(s);
  ASSERT_EQ(r.size(), 1U);
  ASSERT_GT(r[0].second, 0);
  ASSERT_LT(r[0].second, static_cast<long>(big.size()));
  // Exactly the reported prefix arrived, once.
  EXPECT_EQ(p.read_all_at_peer(), big.substr(0, static_cast<std::size_t>(r[0].second)));
}

TEST_P(BatchedIo, ErrorsComeBackAsNegativeErrnoWithoutSignals) {
  batched_io s(GetParam());
  socket_pair closed;
  ::close(closed.fd[1]);
  closed.fd[1] = -1;
  const int bad = ::open("/dev/null", O_RDONLY | O_CLOEXEC);  // not a socket
  const std::string msg = "x";
  s.add_send(closed.fd[0], asio::buffer(msg), 1);  // EPIPE, and no SIGPIPE kills the test
  s.add_send(bad, asio::buffer(msg), 2);
  const auto r = run(s);
  ::close(bad);
  ASSERT_EQ(r.size(), 2U);
  EXPECT_EQ(r[0].second, -EPIPE);
  EXPECT_EQ(r[1].second, -ENOTSOCK);
}

TEST_P(BatchedIo, MoreSendsThanRingSlotsAreAllMadeOnce) {
  batched_io s(GetParam());
  constexpr std::size_t n = batched_io::k_ring_entries + 17;  // 546 descriptors
  std::vector<socket_pair> pairs(n);
  std::vector<std::string> msgs;
  msgs.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    msgs.push_back("message " + std::to_string(i));
    s.add_send(pairs[i].fd[0], asio::buffer(msgs[i]), 1000 + i);
  }
  const auto r = run(s);
  ASSERT_EQ(r.size(), n);
  for (std::size_t i = 0; i < n; ++i) {
    EXPECT_EQ(r[i].first, 1000 + i);
    EXPECT_EQ(r[i].second, static_cast<long>(msgs[i].size()));
    EXPECT_EQ(pairs[i].read_all_at_peer(), msgs[i]);
  }
}

TEST_P(BatchedIo, SendsListedWhileReportingWaitForTheNextRun) {
  batched_io s(GetParam());
  socket_pair p;
  const std::string first = "first ";
  const std::string second = "second";
  s.add_send(p.fd[0], asio::buffer(first), 1);
  results r;
  s.run([&](std::uint64_t tag, long result) {
    r.emplace_back(tag, result);
    if (tag == 1) {
      s.add_send(p.fd[0], asio::buffer(second), 2);
    }
  });
  EXPECT_EQ(r, (results{{1, 6}}));
  EXPECT_EQ(p.read_all_at_peer(), first);
  EXPECT_EQ(s.size(), 1U);
  EXPECT_EQ(run(s), (results{{2, 6}}));
  EXPECT_EQ(p.read_all_at_peer(), second);
}

TEST_P(BatchedIo, ReceivesWhatIsWaitingAndReportsAnEmptySocketAsEagain) {
  batched_io s(GetParam());
  socket_pair with_data;
  socket_pair empty;
  with_data.send_to_tested("waiting bytes");
  std::string a(64, '\0');
  std::string b(64, '\0');
  s.add_recv(with_data.fd[0], asio::buffer(a), 4);
  s.add_recv(empty.fd[0], asio::buffer(b), 5);
  const auto r = run(s);
  ASSERT_EQ(r.size(), 2U);
  EXPECT_EQ(r[0], (std::pair<std::uint64_t, long>{4, 13}));
  EXPECT_EQ(a.substr(0, 13), "waiting bytes");
  EXPECT_EQ(r[1].first, 5U);
  EXPECT_TRUE(r[1].second == -EAGAIN || r[1].second == -EWOULDBLOCK) << r[1].second;
  EXPECT_EQ(b, std::string(64, '\0'));  // nothing written into it
}

TEST_P(BatchedIo, AReceiveTakesNoMoreThanItsBufferAndLeavesTheRestQueued) {
  batched_io s(GetParam());
  socket_pair p;
  p.send_to_tested("0123456789");
  std::string buf(4, '\0');
  s.add_recv(p.fd[0], asio::buffer(buf), 1);
  EXPECT_EQ(run(s), (results{{1, 4}}));
  EXPECT_EQ(buf, "0123");
  EXPECT_EQ(p.read(0, 100), "456789");
}

TEST_P(BatchedIo, APeerThatClosedReadsAsZeroAndABadDescriptorAsAnError) {
  batched_io s(GetParam());
  socket_pair closed;
  closed.send_to_tested("last words");
  ::close(closed.fd[1]);
  closed.fd[1] = -1;
  const int bad = ::open("/dev/null", O_RDONLY | O_CLOEXEC);  // not a socket
  std::string buf(64, '\0');
  std::string after(64, '\0');
  std::string other(64, '\0');
  s.add_recv(closed.fd[0], asio::buffer(buf), 1);
  s.add_recv(bad, asio::buffer(other), 2);
  auto r = run(s);
  ASSERT_EQ(r.size(), 2U);
  EXPECT_EQ(r[0].second, 10);  // what was sent before the close comes first
  EXPECT_EQ(r[1].second, -ENOTSOCK);
  s.add_recv(closed.fd[0], asio::buffer(after), 3);
  r = run(s);
  ::close(bad);
  EXPECT_EQ(r, (results{{3, 0}}));  // then the end of the stream
}

TEST_P(BatchedIo, SendsAndReceivesListedTogetherAreMadeInOneRun) {
  batched_io s(GetParam());
  socket_pair out;
  socket_pair in;
  in.send_to_tested("ping");
  const std::string msg = "pong";
  std::string buf(16, '\0');
  s.add_send(out.fd[0], asio::buffer(msg), 1);
  s.add_recv(in.fd[0], asio::buffer(buf), 2);
  EXPECT_EQ(run(s), (results{{1, 4}, {2, 4}}));
  EXPECT_EQ(out.read_all_at_peer(), "pong");
  EXPECT_EQ(buf.substr(0, 4), "ping");
}

TEST_P(BatchedIo, MoreReceivesThanRingSlotsAreAllMadeOnce) {
  batched_io s(GetParam());
  constexpr std::size_t n = batched_io::k_ring_entries + 17;
  std::vector<socket_pair> pairs(n);
  std::vector<std::string> bufs(n, std::string(32, '\0'));
  for (std::size_t i = 0; i < n; ++i) {
    pairs[i].send_to_tested("message " + std::to_string(i));
    s.add_recv(pairs[i].fd[0], asio::buffer(bufs[i]), 1000 + i);
  }
  const auto r = run(s);
  ASSERT_EQ(r.size(), n);
  for (std::size_t i = 0; i < n; ++i) {
    const std::string want = "message " + std::to_string(i);
    EXPECT_EQ(r[i].first, 1000 + i);
    ASSERT_EQ(r[i].second, static_cast<long>(want.size()));
    EXPECT_EQ(bufs[i].substr(0, want.size()), want);
    EXPECT_EQ(pairs[i].read(0, 100), "");  // read once, all of it
  }
}

}  // namespace
}  // namespace gwx::net
