#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "common/metrics/callback.hpp"

namespace gwx::metrics {

class registry;

/// The fields of /proc/self/stat the process metrics use, in the kernel's units.
struct proc_stat {
  std::uint64_t utime_ticks = 0;
  std::uint64_t stime_ticks = 0;
  std::uint64_t start_ticks = 0;  // after boot
  std::uint64_t vsize_bytes = 0;
  std::uint64_t rss_pages = 0;
};

/// Parses the text of /proc/<pid>/stat (the command name may hold spaces and parentheses);
/// nullopt when it is malformed.
std::optional<proc_stat> parse_proc_stat(std::string_view text);

/// The process figures in Prometheus's base units.
struct process_stats {
  double cpu_seconds = 0;
  double resident_memory_bytes = 0;
  double virtual_memory_bytes = 0;
  double start_time_seconds = 0;  // Unix time
  double open_fds = 0;
  double max_fds = 0;
};

/// Reads /proc/self (and /proc/stat for the boot time); nullopt where /proc is not mounted.
std::optional<process_stats> read_process_stats();

/// Registers the standard process metrics, read from /proc/self at scrape time:
/// process_cpu_seconds_total, process_resident_memory_bytes, process_virtual_memory_bytes,
/// process_open_fds, process_max_fds, process_start_time_seconds; and gwx_build_info{version}
/// (always 1). Unregisters them when destroyed. Construct and destroy from one thread; scrapes
/// may run on any.
class process_collector {
 public:
  /// Throws std::invalid_argument if `reg` already holds these names with another shape.
  explicit process_collector(registry& reg);

 private:
  std::vector<callback_registration> registrations_;
};

}  // namespace gwx::metrics
