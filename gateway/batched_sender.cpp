#include "gateway/batched_sender.hpp"

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

namespace gwx::gateway {
namespace {

constexpr int k_send_flags = MSG_DONTWAIT | MSG_NOSIGNAL;

std::string error_text(int err) {
  return std::error_code(err, std::system_category()).message();
}

}  // namespace

struct batched_sender::ring {
  io_uring uring{};
  std::vector<msghdr> headers;  ///< one per sendmsg of a chunk, alive until it completed
};

namespace {

// Whether a MSG_DONTWAIT send through `r` completes during the submitting call, whether the
// socket takes the bytes or is full. Empty when it does, else what went wrong.
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
  for (const bool full : {true, false}) {
    const int fd = full ? fds[0] : fds[1];  // fds[1]'s peer has room: it takes the byte
    io_uring_sqe* sqe = io_uring_get_sqe(&r);
    io_uring_prep_send(sqe, fd, fill, 1, k_send_flags);
    if (const int n = io_uring_submit(&r); n != 1) {
      why = "probe submit: " + error_text(n < 0 ? -n : EIO);
      break;
    }
    io_uring_cqe* cqe = nullptr;
    if (io_uring_peek_cqe(&r, &cqe) != 0 || cqe == nullptr) {
      // Left pending: the ring is torn down by the caller, which cancels it.
      why = "a non-blocking send did not complete during its submission";
      break;
    }
    const int res = cqe->res;
    io_uring_cqe_seen(&r, cqe);
    if (full ? res != -EAGAIN : res != 1) {
      why = std::string("probe send to a ") + (full ? "full" : "free") + " socket returned " +
            std::to_string(res);
      break;
    }
  }
  ::close(fds[0]);
  ::close(fds[1]);
  return why;
}

}  // namespace

static_assert(sizeof(iovec) == 2 * sizeof(void*) && offsetof(iovec, iov_len) == sizeof(void*),
              "batched_sender::iov mirrors struct iovec");

batched_sender::batched_sender(bool use_ring) {
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

batched_sender::~batched_sender() {
  if (ring_) {
    io_uring_queue_exit(&ring_->uring);
  }
}

void batched_sender::add(int fd, const asio::const_buffer* bufs, std::size_t count,
                         std::uint64_t tag) {
  auto& l = listed_;
  l.ops.push_back(
      {fd, static_cast<std::uint32_t>(l.iovs.size()), static_cast<std::uint32_t>(count), tag});
  for (std::size_t i = 0; i < count; ++i) {
    l.iovs.push_back({bufs[i].data(), bufs[i].size()});
  }
}

void batched_sender::execute() {
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

bool batched_sender::execute_ring(std::size_t begin, std::size_t end) {
  auto& r = *ring_;
  for (std::size_t i = begin; i < end; ++i) {
    const auto& o = running_.ops[i];
    const iov* v = &running_.iovs[o.first];
    io_uring_sqe* sqe = io_uring_get_sqe(&r.uring);  // never null: the ring is empty now
    if (o.count == 1) {
      io_uring_prep_send(sqe, o.fd, v->base, v->len, k_send_flags);
    } else {
      auto& h = r.headers[i - begin];
      h = msghdr{};
      h.msg_iov = reinterpret_cast<iovec*>(const_cast<iov*>(v));
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
      // Cannot happen with sends that complete inline; were it to, the sends not reported
      // count as failed (their connections close): a send is never made twice.
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
  // The sends not taken still sit in the submission ring: tearing it down drops them, and
  // from now on every send is a plain sendmsg().
  io_uring_queue_exit(&r.uring);
  ring_.reset();
  if (taken != 0) {
    execute_plain(begin + taken, end);
    return true;
  }
  return false;
}

void batched_sender::execute_plain(std::size_t begin, std::size_t end) {
  for (std::size_t i = begin; i < end; ++i) {
    const auto& o = running_.ops[i];
    msghdr h{};
    h.msg_iov = reinterpret_cast<iovec*>(&running_.iovs[o.first]);
    h.msg_iovlen = o.count;
    // The system call itself, not libc's sendmsg(): that is a thread cancellation point, which
    // in a process with threads brackets every call with two more, and no gwx thread is ever
    // cancelled.
    const long n = ::syscall(SYS_sendmsg, o.fd, &h, k_send_flags);
    results_[i] = n >= 0 ? n : -static_cast<long>(errno);
  }
}

}  // namespace gwx::gateway
