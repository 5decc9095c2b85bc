#pragma once

#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace gwx {

/// Sets up the default spdlog logger (stderr) for a binary. `format` is "text" or "json".
/// Throws std::invalid_argument on an unknown level or format.
void init_logging(const std::string& program, const std::string& level, const std::string& format);

/// `text` that a peer chose (a bus field's name, a watcher's name, an announced address) fit
/// for one log line: every control character (C0, DEL, C1), the backslash and every byte that is
/// not UTF-8 written as \xNN, so it can neither forge a line nor drive a terminal, and an escape
/// in the output always comes from the escaping; past `max_bytes` it is cut between characters
/// and ends with `...(N bytes)`, N the full size. Thread-safe.
std::string printable(std::string_view text, std::size_t max_bytes = 256);

/// Logs a repeated event at most once per interval: count() every occurrence, and when it
/// returns true write one line with take_pending(), the occurrences that line covers. The first
/// occurrence is always logged. Not thread-safe (one per owner's loop).
class log_throttle {
 public:
  using clock = std::chrono::steady_clock;
  explicit log_throttle(clock::duration interval = std::chrono::seconds(10))
      : interval_(interval) {}

  /// Counts one occurrence; true when a line is due now.
  bool count(clock::time_point now = clock::now()) {
    ++total_;
    ++pending_;
    if (logged_ != clock::time_point{} && now - logged_ < interval_) {
      return false;
    }
    logged_ = now;
    return true;
  }
  /// Occurrences since the last line, this one included; call after count() returned true.
  std::uint64_t take_pending() {
    const auto n = pending_;
    pending_ = 0;
    return n;
  }
  /// Occurrences in all.
  std::uint64_t total() const { return total_; }

 private:
  clock::duration interval_;
  clock::time_point logged_{};
  std::uint64_t pending_ = 0;
  std::uint64_t total_ = 0;
};

}  // namespace gwx
