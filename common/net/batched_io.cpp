#include "common/net/batched_io.hpp"

#include <liburing.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <system_error>

namespace gwx::net {
namespace {

constexpr int k_send_flags = MSG_DONTWAIT | MSG_NOSIGNAL;
constexpr int k_recv_flags = MSG_DONTWAIT;

std::string error_text(int err) {
  return std::error_code(err, std::system_category()).message();
}

}  // namespace

struct batched_io::ring {
  io_uring uring{};
  std::vector<msghdr> headers;  ///< one per sendmsg of a chunk, alive until it completed
};

namespace {

// Submits `sqe`'s operation and returns its result if it completed during the submitting
// call; else sets `why` (prefixed by `what`) and returns 0.
int probe_one(io_uring& r, const char* what, std::string& why) {
  if (const int n = io_uring_submit(&r); n != 1) {
    why = std::string("probe ") + what + ": submit: " + error_text(n < 0 ? -n : EIO);
    return 0;
  }
  io_uring_cqe* cqe = nullptr;
  if (io_uring_peek_cqe(&r, &cqe) != 0 || cqe == nullptr) {
    // Left pending: the ring is torn down by the caller, which cancels it.
    why = std::string("a non-blocking ") + what + " did not complete during its submission";
    return 0;
  }
  const int res = cqe->res;
  io_uring_cqe_seen(&r, cqe);
  return res;
}

// Whether MSG_DONTWAIT sends and receives through `r` complete during the submitting call,
// whether or not the socket can move bytes now. Empty when they do, else what went wrong.
std::string probe(io_uring& r) {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) != 0) {
    return "probe socketpair: " + error_text(errno);
  }
  const int small = 4096;
  ::setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
  char fill[4096] = {};
  while (::send(fds[0], fill, sizeof fill, k_send_flags) > 0) {
  }
  std::string why;
  // A send to the full fds[0], one byte to fds[0] from fds[1], that byte received, then a
  // receive from the now empty fds[0].
  struct step {
    const char* what;
    int fd;
    bool send;
    int expect;
  };
  const step steps[] = {{"send to a full socket", fds[0], true, -EAGAIN},
                        {"send to a free socket", fds[1], true, 1},
                        {"receive from a socket with data", fds[0], false, 1},
                        {"receive from an empty socket", fds[0], false, -EAGAIN}};
  for (const auto& s : steps) {
    io_uring_sqe* sqe = io_uring_get_sqe(&r);
    if (s.send) {
      io_uring_prep_send(sqe, s.fd, fill, 1, k_send_flags);
    } else {
      io_uring_prep_recv(sqe, s.fd, fill, sizeof fill, k_recv_flags);
    }
    const int res = probe_one(r, s.what, why);
    if (!why.empty()) {
      break;
    }
    if (res != s.expect) {
      why = std::string("probe ") + s.what + " returned " + std::to_string(res);
      break;
    }
  }
  ::close(fds[0]);
  ::close(fds[1]);
  return why;
}

}  // namespace

static_assert(sizeof(iovec) == 2 * sizeof(void*) && offsetof(iovec, iov_len) == sizeof(void*),
              "batched_io::iov mirrors struct iovec");

batched_io::batched_io(bool use_ring) {
  if (!use_ring) {
    return;
  }
  auto r = std::make_unique<ring>();
  // SUBMIT_ALL (Linux 5.18): a send that fails at submission does not stop the ones after it.
  if (const int err = io_uring_queue_init(k_ring_entries, &r->uring, IORING_SETUP_SUBMIT_ALL);
      err < 0) {
    why_not_ = "io_uring unavailable: " + error_text(-err);
    return;
  }
  why_not_ = probe(r->uring);
  if (!why_not_.empty()) {
    io_uring_queue_exit(&r->uring);
    return;
  }
  r->headers.resize(k_ring_entries);
  ring_ = std::move(r);
}

batched_io::~batched_io() {
  if (ring_) {
    io_uring_queue_exit(&ring_->uring);
  }
}

void batched_io::add_send(int fd, const asio::const_buffer* bufs, std::size_t count,
                          std::uint64_t tag) {
  auto& l = listed_;
  l.ops.push_back({fd, false, static_cast<std::uint32_t>(l.iovs.size()),
                   static_cast<std::uint32_t>(count), tag});
  for (std::size_t i = 0; i < count; ++i) {
    // Never written through: a send's buffers are only read.
    l.iovs.push_back({const_cast<void*>(bufs[i].data()), bufs[i].size()});
  }
}

void batched_io::add_recv(int fd, asio::mutable_buffer buf, std::uint64_t tag) {
  auto& l = listed_;
  l.ops.push_back({fd, true, static_cast<std::uint32_t>(l.iovs.size()), 1, tag});
  l.iovs.push_back({buf.data(), buf.size()});
}

void batched_io::execute() {
  const std::size_t n = running_.ops.size();
  results_.resize(n);
  for (std::size_t begin = 0; begin < n;) {
    const std::size_t end = std::min(n, begin + k_ring_entries);
    if (!ring_ || !execute_ring(begin, end)) {
      execute_plain(begin, end);
    }
    begin = end;
  }
}

bool batched_io::execute_ring(std::size_t begin, std::size_t end) {
  auto& r = *ring_;
  for (std::size_t i = begin; i < end; ++i) {
    const auto& o = running_.ops[i];
    iov* v = &running_.iovs[o.first];
    io_uring_sqe* sqe = io_uring_get_sqe(&r.uring);  // never null: the ring is empty now
    if (o.recv) {
      io_uring_prep_recv(sqe, o.fd, v->base, v->len, k_recv_flags);
    } else if (o.count == 1) {
      io_uring_prep_send(sqe, o.fd, v->base, v->len, k_send_flags);
    } else {
      auto& h = r.headers[i - begin];
      h = msghdr{};
      h.msg_iov = reinterpret_cast<iovec*>(v);
      h.msg_iovlen = o.count;
      io_uring_prep_sendmsg(sqe, o.fd, &h, k_send_flags);
    }
    io_uring_sqe_set_data64(sqe, i);
  }
  const std::size_t listed = end - begin;
  int submitted = io_uring_submit(&r.uring);
  while (submitted == -EINTR) {
    submitted = io_uring_submit(&r.uring);
  }
  // The first `submitted` sends were taken by the kernel; their completions are due now.
  const std::size_t taken = submitted > 0 ? static_cast<std::size_t>(submitted) : 0;
  for (std::size_t seen = 0; seen < taken;) {
    io_uring_cqe* cqe = nullptr;
    if (const int err = io_uring_wait_cqe(&r.uring, &cqe); err < 0) {
      if (err == -EINTR) {
        continue;
      }
      // Cannot happen with operations that complete inline; were it to, those not reported
      // count as failed (their connections close): an operation is never made twice.
      for (std::size_t i = begin + seen; i < begin + taken; ++i) {
        results_[i] = -EIO;
      }
      why_not_ = "io_uring wait failed: " + error_text(-err);
      break;
    }
    results_[io_uring_cqe_get_data64(cqe)] = cqe->res;
    io_uring_cqe_seen(&r.uring, cqe);
    ++seen;
  }
  if (taken == listed && why_not_.empty()) {
    return true;
  }
  if (why_not_.empty()) {
    why_not_ = "io_uring submit failed: " + error_text(submitted < 0 ? -submitted : EIO);
  }
  // The operations not taken still sit in the submission ring: tearing it down drops them,
  // and from now on each is a system call of its own.
  io_uring_queue_exit(&r.uring);
  ring_.reset();
  if (taken != 0) {
    execute_plain(begin + taken, end);
    return true;
  }
  return false;
}

void batched_io::execute_plain(std::size_t begin, std::size_t end) {
  for (std::size_t i = begin; i < end; ++i) {
    const auto& o = running_.ops[i];
    auto& v = running_.iovs[o.first];
    // The system calls themselves, not libc's sendmsg() or recv(): those are thread
    // cancellation points, which in a process with threads bracket every call with two more,
    // and no gwx thread is ever cancelled.
    long n = 0;
    if (o.recv) {
      n = ::syscall(SYS_recvfrom, o.fd, v.base, v.len, k_recv_flags, nullptr, nullptr);
    } else {
      msghdr h{};
      h.msg_iov = reinterpret_cast<iovec*>(&v);
      h.msg_iovlen = o.count;
      n = ::syscall(SYS_sendmsg, o.fd, &h, k_send_flags);
    }
    results_[i] = n >= 0 ? n : -static_cast<long>(errno);
  }
}

}  // namespace gwx::net
