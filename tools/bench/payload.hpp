#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace gwx::bench {

/// The bytes of one benchmark message: printable ASCII (valid as WebSocket text, no newline),
/// `[0,8)` the sequence number (hex, mod 2^32), `[8,20)` the send time in nanoseconds since the
/// run's epoch (hex), then filler derived from the sequence number, so a reply can be checked
/// byte for byte without keeping a copy of what was sent. Stateless.
class payload {
 public:
  static constexpr std::size_t k_min_size = 20;

  /// Appends a message of `size` bytes (>= k_min_size) to `out`.
  static void write(std::string& out, std::size_t size, std::uint32_t seq, std::uint64_t sent_ns);

  /// What a received message says, if it is well formed.
  struct fields {
    bool ok = false;  ///< false: not a benchmark message of that size (corrupted, truncated, …)
    std::uint32_t seq = 0;
    std::uint64_t sent_ns = 0;
  };

  /// Parses and checks every byte of `in` (the filler must match the sequence number).
  static fields read(std::string_view in, std::size_t size);
};

}  // namespace gwx::bench
