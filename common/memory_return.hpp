#pragma once

// Gives freed heap memory back to the system after a burst.
//
// glibc keeps the memory a burst freed (the send queues of a hundred clients that stopped
// reading, say) for reuse rather than returning it: a process's resident size stays at its peak
// after the burst has ended. A memory_returner checks, every interval, how much of the resident
// size the allocator holds without it being in use, and when that has grown by more than a
// threshold since the last return, asks the allocator to give its free pages back
// (malloc_trim). Between bursts it costs one reading per interval.

#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <chrono>
#include <cstddef>
#include <functional>

namespace gwx {

class memory_returner {
 public:
  struct reading {
    std::size_t resident = 0;  ///< bytes of the process in memory (VmRSS)
    std::size_t in_use = 0;    ///< bytes the allocator has handed out and not got back
    /// Resident bytes not in use: the allocator's free memory, and everything else resident
    /// that is not the heap (code, stacks), which stays about constant.
    std::size_t held() const { return resident > in_use ? resident - in_use : 0; }
  };
  /// How the process's memory reads now; the real one: VmRSS and mallinfo2().
  using reader = std::function<reading()>;
  /// Gives the allocator's free pages back; the real one: malloc_trim(0).
  using returner = std::function<void()>;

  static constexpr std::chrono::seconds k_default_interval{5};

  /// Returns memory once more than `threshold` bytes are held beyond what the last return left
  /// (or the first reading); 0: never. Checks every `interval` once start()ed on `io`.
  memory_returner(asio::io_context& io, std::size_t threshold,
                  std::chrono::milliseconds interval = k_default_interval,
                  reader read = real_reading, returner give_back = real_return);
  memory_returner(const memory_returner&) = delete;
  memory_returner& operator=(const memory_returner&) = delete;

  void start();
  void stop();

  /// One check now. Returns the resident bytes the return gave back (0 when none was due, or
  /// when it gave nothing back).
  std::size_t check();

  /// Resident bytes given back in all.
  std::size_t returned() const { return returned_; }

  static reading real_reading();
  static void real_return();

 private:
  void arm();

  asio::steady_timer timer_;
  std::size_t threshold_;
  std::chrono::milliseconds interval_;
  reader read_;
  returner give_back_;
  bool started_ = false;
  bool have_floor_ = false;
  std::size_t floor_ = 0;  ///< bytes held after the last return (or at the first reading)
  std::size_t returned_ = 0;
};

/// Has the allocator give back, as memory is freed, what it would keep above `threshold` bytes at
/// the top of each heap (0: leaves the allocator as it is). A memory_returner's malloc_trim()
/// reaches the free pages inside every heap but the top of the main heap only, and a thread of
/// its own (a gateway loop, the worker's network thread) allocates from a heap of its own whose
/// top glibc trims only past its trim threshold, which rises with the largest buffer freed, up to
/// 64 MiB. This fixes that threshold at `threshold`, and the size from which a buffer gets a
/// mapping of its own (returned the moment it is freed) at 4 MiB, where glibc would move it as
/// buffers come and go. Call it once, early.
void bound_allocator_tops(std::size_t threshold);

}  // namespace gwx
