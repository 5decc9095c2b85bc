#include "common/memory_return.hpp"

#include <malloc.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <limits>
#include <utility>

namespace gwx {

memory_returner::memory_returner(asio::io_context& io, std::size_t threshold,
                                 std::chrono::milliseconds interval, reader read,
                                 returner give_back)
    : timer_(io),
      threshold_(threshold),
      interval_(interval),
      read_(std::move(read)),
      give_back_(std::move(give_back)) {}

void memory_returner::start() {
  if (threshold_ == 0 || started_) {
    return;
  }
  started_ = true;
  check();  // the first reading sets the floor
  arm();
}

void memory_returner::stop() {
  started_ = false;
  timer_.cancel();
}

void memory_returner::arm() {
  timer_.expires_after(interval_);
  timer_.async_wait([this](std::error_code ec) {
    if (ec || !started_) {
      return;
    }
    check();
    arm();
  });
}

std::size_t memory_returner::check() {
  if (threshold_ == 0) {
    return 0;
  }
  const reading before = read_();
  const std::size_t held = before.held();
  if (!have_floor_ || held < floor_) {
    // Less held than after the last return: what the process keeps in any case went down (or
    // this is the first reading). The next return is due from here.
    have_floor_ = true;
    floor_ = held;
    return 0;
  }
  if (held - floor_ <= threshold_) {
    return 0;
  }
  const auto began = std::chrono::steady_clock::now();
  give_back_();
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - began);
  const reading after = read_();
  // Whatever stays held (pages still partly in use) is the new floor: no return again until as
  // much more is freed, not one per interval for memory that cannot go.
  floor_ = after.held();
  const std::size_t gave = before.resident > after.resident ? before.resident - after.resident : 0;
  returned_ += gave;
  spdlog::info(
      "returned {} MiB of freed heap memory to the system (resident {} -> {} MiB, in {} ms)",
      gave >> 20, before.resident >> 20, after.resident >> 20, took.count());
  return gave;
}

memory_returner::reading memory_returner::real_reading() {
  reading r;
  if (FILE* f = std::fopen("/proc/self/statm", "r")) {
    unsigned long size = 0;
    unsigned long resident = 0;
    if (std::fscanf(f, "%lu %lu", &size, &resident) == 2) {
      r.resident = resident * static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
    }
    std::fclose(f);
  }
  const struct mallinfo2 m = ::mallinfo2();
  r.in_use = m.uordblks + m.hblkhd;
  return r;
}

void memory_returner::real_return() {
  ::malloc_trim(0);
}

void bound_allocator_tops(std::size_t threshold) {
  if (threshold == 0) {
    return;
  }
  constexpr int k_own_mapping_from = 4 << 20;
  ::mallopt(M_MMAP_THRESHOLD, k_own_mapping_from);
  ::mallopt(M_TRIM_THRESHOLD,
            static_cast<int>(std::min<std::size_t>(threshold, std::numeric_limits<int>::max())));
}

}  // namespace gwx
