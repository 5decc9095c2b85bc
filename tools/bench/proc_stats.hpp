#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

namespace gwx::bench {

/// A server process named on the command line (`--pid NAME=PID`).
struct watched_pid {
  std::string name;
  pid_t pid = 0;
};

/// Parses "NAME=PID". Throws std::invalid_argument with a clear message.
watched_pid parse_watched_pid(const std::string& text);

/// utime + stime of a process in microseconds (/proc/PID/stat); nullopt if it is gone.
std::optional<double> process_cpu_us(pid_t pid);

/// VmRSS of a process in bytes (/proc/PID/status); nullopt if it is gone.
std::optional<long> process_rss_bytes(pid_t pid);

/// CPU time of each watched process at one instant.
struct cpu_snapshot {
  std::vector<std::optional<double>> cpu_us;  ///< in the order of the watched list
  double self_cpu_us = 0;                     ///< this process (the load generator)
  double wall_us = 0;
};

/// Reads every watched process's CPU time and this process's.
cpu_snapshot take_cpu_snapshot(const std::vector<watched_pid>& pids);

/// Waits until the RSS of every process has stopped moving (three readings in a row,
/// `interval_ms` apart, each within 0.5 % of the one before) or `max_ms` passed; returns the
/// last readings.
std::vector<std::optional<long>> settled_rss(const std::vector<watched_pid>& pids,
                                             unsigned interval_ms, unsigned max_ms);

}  // namespace gwx::bench
