#pragma once

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

#include "common/metrics/registry.hpp"

namespace gwx::metrics {

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

/// The standard process metrics as a prometheus-cpp collectable, read from /proc/self at each
/// collection: process_cpu_seconds_total, process_resident_memory_bytes,
/// process_virtual_memory_bytes, process_open_fds, process_max_fds, process_start_time_seconds;
/// and gwx_build_info{version} (always 1). Without /proc only gwx_build_info has a sample.
/// Thread-safe (no state but the start time, fixed at construction).
class process_collectable final : public prometheus::Collectable {
 public:
  process_collectable();

  std::vector<prometheus::MetricFamily> Collect() const override;

  /// The names of the families Collect() produces.
  static const std::vector<std::string>& family_names();

 private:
  double start_time_seconds_ = 0;
};

/// Adds a process_collectable to a registry; removes it when destroyed. Construct and destroy
/// from one thread; scrapes may run on any.
class process_collector {
 public:
  /// Throws std::invalid_argument if `reg` already holds one of these names.
  explicit process_collector(registry& reg);

 private:
  collectable_registration registration_;
};

}  // namespace gwx::metrics
