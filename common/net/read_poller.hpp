#pragma once

#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <asio.hpp>
#include <cerrno>
#include <functional>
#include <system_error>
#include <utility>
#include <vector>

namespace gwx::net {

/// Read readiness of the plain client sockets of one event loop, from an epoll set of its own
/// in level-triggered mode, so that a connection that wants to read stays watched without a
/// system call per read.
///
/// Asio's reactor watches sockets edge-triggered, and every `async_wait(wait_read)` re-arms the
/// socket with an `epoll_ctl(EPOLL_CTL_MOD)` (a speculative `async_read_some` instead pays an
/// EAGAIN `recv`): one extra system call per read, the largest count in the gateway's profile
/// of an echo. Here a target is added once (watch()); each time the set reports it readable it
/// gets `on_poll_ready()` and reads; whether it wants more is its own flag, no call. A target
/// that is reported while it does not want to read (paused, closing) calls forget() and watch()
/// again later: a few calls per pause, not per read. The set itself is one descriptor in Asio's
/// reactor: one re-arm per turn of the loop for all its clients.
///
/// `Target` has `void on_poll_ready()` and is kept alive by its caller while reported. A target
/// must forget() itself before it is destroyed or its socket closed; events of this turn for a
/// target that forgot itself are not delivered. Used on one loop, not thread-safe.
template <typename Target>
class read_poller {
 public:
  /// Most events taken from the set per turn; the rest come on the next turn, after what this
  /// turn's reads caused was written. Small enough that a burst of reads from all clients is
  /// passed on (to a worker, to other clients) in several writes while the rest is still being
  /// read, instead of one write after all of it: an echo at 8 in flight over 100 connections
  /// ran 13-32 % faster with 32 than with 256 (docs/benchmarks.md).
  static constexpr int k_batch = 32;

  explicit read_poller(asio::io_context& io) : set_(io) {
    const int fd = ::epoll_create1(EPOLL_CLOEXEC);
    if (fd < 0) {
      throw std::system_error(errno, std::system_category(), "epoll_create1 for client reads");
    }
    set_.assign(fd);
  }
  read_poller(const read_poller&) = delete;
  read_poller& operator=(const read_poller&) = delete;

  /// Reports `t` readable (level-triggered) until forget(). False, with errno set, when the
  /// kernel refuses (no memory, a bad descriptor).
  bool watch(Target& t, int fd) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = &t;
    if (::epoll_ctl(set_.native_handle(), EPOLL_CTL_ADD, fd, &ev) != 0) {
      return false;
    }
    if (!armed_) {
      arm();
    }
    return true;
  }

  /// Has `f` run after the targets reported in a turn got their on_poll_ready(): where the
  /// reads they listed are made together (one call for all of them instead of one each).
  void after_each_turn(std::function<void()> f) { after_turn_ = std::move(f); }

  /// Stops reporting `t` (its socket `fd` still open), including its events already taken.
  void forget(Target& t, int fd) {
    epoll_event ev{};
    ::epoll_ctl(set_.native_handle(), EPOLL_CTL_DEL, fd, &ev);
    if (dispatching_) {
      forgotten_.push_back(&t);
    }
  }

 private:
  void arm() {
    armed_ = true;
    set_.async_wait(asio::posix::stream_descriptor::wait_read, [this](std::error_code ec) {
      armed_ = false;
      if (ec) {
        return;  // the loop is going away
      }
      dispatch();
      arm();
    });
  }

  void dispatch() {
    const int n = ::epoll_wait(set_.native_handle(), events_.data(), k_batch, 0);
    dispatching_ = true;
    for (int i = 0; i < n; ++i) {
      auto* t = static_cast<Target*>(events_[i].data.ptr);
      if (!forgotten_.empty() &&
          std::find(forgotten_.begin(), forgotten_.end(), t) != forgotten_.end()) {
        continue;  // forgot itself (closed, maybe freed) since the set was read
      }
      t->on_poll_ready();
    }
    dispatching_ = false;
    forgotten_.clear();
    if (n > 0 && after_turn_) {
      after_turn_();
    }
  }

  asio::posix::stream_descriptor set_;
  std::array<epoll_event, k_batch> events_{};
  std::vector<Target*> forgotten_;
  std::function<void()> after_turn_;
  bool armed_ = false;
  bool dispatching_ = false;
};

}  // namespace gwx::net
