#pragma once

#include <asio/buffer.hpp>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace gwx::net {

/// Non-blocking sends and receives on many sockets in as few system calls as it can: the writes
/// one turn of an event loop has for its connections (a broadcast to hundreds of clients, the
/// replies of an echo burst), or the reads of the connections its readiness set reported, are
/// listed, then run() hands them to the kernel together through io_uring, up to k_ring_entries
/// per call, and reports each result as send()/sendmsg()/recv() would have. Where a system
/// call's entry costs about as much as the TCP work of a small send, one call per batch instead
/// of one per connection halves the CPU per delivery; where the send itself dominates, it saves
/// little (docs/benchmarks.md has both machines).
///
/// Every operation carries MSG_DONTWAIT: the kernel completes it inline, during the submitting
/// call (bytes moved, fewer, or -EAGAIN), never later, so nothing is pending once run() returns
/// and the buffers need live only until then. The constructor checks that on this kernel with a
/// probe (a send to a full socket and a receive from an empty one must come back -EAGAIN at
/// once). Where io_uring is missing, disabled (kernel.io_uring_disabled, a seccomp filter) or
/// fails that probe, the same calls make one sendmsg() or recvfrom() per listed operation. Used
/// on one thread, not thread-safe.
class batched_io {
 public:
  /// Submission slots of the ring: operations beyond it in one run go in further calls.
  static constexpr unsigned k_ring_entries = 256;

  /// `use_ring`: try io_uring (false: one system call per operation).
  explicit batched_io(bool use_ring);
  ~batched_io();
  batched_io(const batched_io&) = delete;
  batched_io& operator=(const batched_io&) = delete;

  /// True when operations go through io_uring.
  bool batched() const { return ring_ != nullptr; }
  /// Why io_uring is not used (empty when it is, or when it was not asked for).
  const std::string& why_not_batched() const { return why_not_; }

  /// Lists a send of `count` buffers to `fd`; `tag` names it in run()'s report. The buffers
  /// must stay valid, and `fd` open, until run() returns.
  void add_send(int fd, const asio::const_buffer* bufs, std::size_t count, std::uint64_t tag);
  void add_send(int fd, asio::const_buffer buf, std::uint64_t tag) { add_send(fd, &buf, 1, tag); }
  /// Lists a receive of up to `buf.size()` bytes from `fd` into `buf`, which must stay valid,
  /// and `fd` open, until run() returns.
  void add_recv(int fd, asio::mutable_buffer buf, std::uint64_t tag);
  /// Operations listed and not yet run.
  std::size_t size() const { return listed_.ops.size(); }

  /// Makes everything listed, then calls `done(tag, result)` for each in the order listed:
  /// `result` is the number of bytes moved (a send: maybe fewer than listed; a receive: 0 when
  /// the peer closed its side) or -errno (-EAGAIN: nothing to move now). Operations listed from
  /// `done` wait for the next run().
  template <typename Done>
  void run(Done&& done) {
    std::swap(listed_, running_);
    execute();
    for (std::size_t i = 0; i < running_.ops.size(); ++i) {
      done(running_.ops[i].tag, results_[i]);
    }
    running_.ops.clear();
    running_.iovs.clear();
  }

 private:
  struct op {
    int fd;
    bool recv;
    std::uint32_t first;  ///< index of its first buffer in iovs
    std::uint32_t count;
    std::uint64_t tag;
  };
  struct iov {  // the layout of struct iovec, without <sys/uio.h> here
    void* base;
    std::size_t len;
  };
  struct list {
    std::vector<op> ops;
    std::vector<iov> iovs;
  };
  struct ring;

  void execute();
  bool execute_ring(std::size_t begin, std::size_t end);
  void execute_plain(std::size_t begin, std::size_t end);

  std::unique_ptr<ring> ring_;
  std::string why_not_;
  list listed_;
  list running_;
  std::vector<long> results_;
};

}  // namespace gwx::net
