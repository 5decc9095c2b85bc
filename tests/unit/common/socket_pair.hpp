#pragma once

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>
#include <string>

namespace gwx::test_io {

/// A connected pair of non-blocking AF_UNIX stream sockets for tests of code that writes to or
/// watches a socket: `fd[0]` is the side under test, `fd[1]` its peer. A test may close one side
/// early and set it to -1.
struct socket_pair {
  int fd[2] = {-1, -1};
  socket_pair() {
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fd), 0);
  }
  ~socket_pair() {
    for (int f : fd) {
      if (f >= 0) {
        ::close(f);
      }
    }
  }
  socket_pair(const socket_pair&) = delete;
  socket_pair& operator=(const socket_pair&) = delete;

  /// Sends `s` from the peer to the side under test.
  void send_to_tested(const std::string& s) const {
    ASSERT_EQ(::send(fd[1], s.data(), s.size(), 0), static_cast<ssize_t>(s.size()));
  }
  /// Reads at most `most` bytes waiting at `side` (empty when none).
  std::string read(int side, std::size_t most) const {
    std::string buf(most, '\0');
    const ssize_t n = ::recv(fd[side], buf.data(), most, MSG_DONTWAIT);
    buf.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
    return buf;
  }
  /// Everything waiting at the peer (what the side under test sent).
  std::string read_all_at_peer() const {
    std::string out;
    for (std::string chunk = read(1, 65536); !chunk.empty(); chunk = read(1, 65536)) {
      out += chunk;
    }
    return out;
  }
};

}  // namespace gwx::test_io
