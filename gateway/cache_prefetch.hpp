#pragma once

#include <algorithm>
#include <cstddef>

namespace gwx::gateway {

/// Asks the CPU to bring the first `bytes` (at most 256) of the object at `p` into
/// its cache, without waiting for them. For loops over many connections whose objects were
/// pushed out of the cache since they were last touched (a broadcast's recipients: each
/// delivery's system call evicts the next ones): fetched a few iterations ahead, an object is
/// there when its turn comes. Harmless on any address, even a freed one: a prefetch never faults.
inline void prefetch_lines(const void* p, std::size_t bytes) {
  constexpr std::size_t k_cache_line = 64;
  constexpr std::size_t k_most = 4 * k_cache_line;
  const auto* first = static_cast<const char*>(p);
  const std::size_t n = std::min(bytes, k_most);
  // With `bytes` a constant (as everywhere), a few prefetch instructions and no loop.
  for (std::size_t off = 0; off < n; off += k_cache_line) {
    __builtin_prefetch(first + off);
  }
  __builtin_prefetch(first + n - 1);
}

}  // namespace gwx::gateway
