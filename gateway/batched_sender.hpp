#pragma once

#include <asio/buffer.hpp>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace gwx::gateway {

/// Non-blocking sends to many sockets in as few system calls as it can: the writes one turn of
/// an event loop has for its connections (a broadcast to hundreds of clients, the replies of an
/// echo burst) are listed, then run() hands them to the kernel together through io_uring, up to
/// k_ring_entries per call, and reports each result as send()/sendmsg() would have. Where a
/// system call's entry costs about as much as the TCP work of a small send, one call per batch
/// instead of one per connection halves the CPU per delivery; where the send itself dominates,
/// it saves little (docs/benchmarks.md has both machines).
///
/// Every send carries MSG_DONTWAIT: the kernel completes it inline, during the submitting call
/// (bytes taken, fewer, or -EAGAIN), never later, so nothing is pending once run() returns and
/// the buffers need live only until then. The constructor checks that on this kernel with a probe
/// (a send to a full socket must come back -EAGAIN at once). Where io_uring is missing, disabled
/// (kernel.io_uring_disabled, a seccomp filter) or fails that probe, the same calls make one
/// sendmsg() per listed send. Used on one thread, not thread-safe.
class batched_sender {
 public:
  /// Submission slots of the ring: sends beyond it in one run go in further calls.
  static constexpr unsigned k_ring_entries = 256;

  /// `use_ring`: try io_uring (false: one sendmsg() per send).
  explicit batched_sender(bool use_ring);
  ~batched_sender();
  batched_sender(const batched_sender&) = delete;
  batched_sender& operator=(const batched_sender&) = delete;

  /// True when sends go through io_uring.
  bool batched() const { return ring_ != nullptr; }
  /// Why io_uring is not used (empty when it is, or when it was not asked for).
  const std::string& why_not_batched() const { return why_not_; }

  /// Lists a send of `count` buffers to `fd`; `tag` names it in run()'s report. The buffers
  /// must stay valid, and `fd` open, until run() returns.
  void add(int fd, const asio::const_buffer* bufs, std::size_t count, std::uint64_t tag);
  void add(int fd, asio::const_buffer buf, std::uint64_t tag) { add(fd, &buf, 1, tag); }
  /// Sends listed and not yet run.
  std::size_t size() const { return listed_.ops.size(); }

  /// Sends everything listed, then calls `done(tag, result)` for each in the order listed:
  /// `result` is the number of bytes the socket took (maybe fewer than listed) or -errno
  /// (-EAGAIN: it took nothing). Sends listed from `done` wait for the next run().
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
    std::uint32_t first;  ///< index of its first buffer in iovs
    std::uint32_t count;
    std::uint64_t tag;
  };
  struct iov {  // the layout of struct iovec, without <sys/uio.h> here
    const void* base;
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

}  // namespace gwx::gateway
