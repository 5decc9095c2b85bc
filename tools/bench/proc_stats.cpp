#include "tools/bench/proc_stats.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace gwx::bench {

watched_pid parse_watched_pid(const std::string& text) {
  const auto eq = text.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == text.size()) {
    throw std::invalid_argument("--pid '" + text + "': expected NAME=PID, e.g. gateway=1234");
  }
  watched_pid w;
  w.name = text.substr(0, eq);
  char* end = nullptr;
  const long pid = std::strtol(text.c_str() + eq + 1, &end, 10);
  if (*end != '\0' || pid <= 0) {
    throw std::invalid_argument("--pid '" + text + "': '" + text.substr(eq + 1) +
                                "' is not a process id");
  }
  w.pid = static_cast<pid_t>(pid);
  if (!process_cpu_us(w.pid)) {
    throw std::invalid_argument("--pid '" + text + "': no process " + std::to_string(pid) +
                                " (/proc/" + std::to_string(pid) + "/stat unreadable)");
  }
  return w;
}

std::optional<double> process_cpu_us(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text;
  if (!std::getline(in, text)) {
    return std::nullopt;
  }
  // The command name (field 2) may hold spaces: count fields after its closing parenthesis.
  const auto close = text.rfind(')');
  if (close == std::string::npos) {
    return std::nullopt;
  }
  std::istringstream fields(text.substr(close + 2));
  std::string field;
  unsigned long long utime = 0;
  unsigned long long stime = 0;
  // Fields 3.. : state(3) ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt
  // utime(14) stime(15).
  for (int i = 3; i <= 15 && fields >> field; ++i) {
    if (i == 14) {
      utime = std::stoull(field);
    } else if (i == 15) {
      stime = std::stoull(field);
    }
  }
  static const double tick_us = 1e6 / static_cast<double>(sysconf(_SC_CLK_TCK));
  return static_cast<double>(utime + stime) * tick_us;
}

std::optional<long> process_rss_bytes(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) {
      return std::strtol(line.c_str() + 6, nullptr, 10) * 1024;
    }
  }
  return std::nullopt;
}

cpu_snapshot take_cpu_snapshot(const std::vector<watched_pid>& pids) {
  cpu_snapshot s;
  for (const auto& w : pids) {
    s.cpu_us.push_back(process_cpu_us(w.pid));
  }
  rusage self{};
  getrusage(RUSAGE_SELF, &self);
  s.self_cpu_us = static_cast<double>(self.ru_utime.tv_sec + self.ru_stime.tv_sec) * 1e6 +
                  static_cast<double>(self.ru_utime.tv_usec + self.ru_stime.tv_usec);
  s.wall_us = static_cast<double>(std::chrono::duration_cast<std::chrono::microseconds>(
                                      std::chrono::steady_clock::now().time_since_epoch())
                                      .count());
  return s;
}

std::vector<std::optional<long>> settled_rss(const std::vector<watched_pid>& pids,
                                             unsigned interval_ms, unsigned max_ms) {
  auto read_all = [&] {
    std::vector<std::optional<long>> v;
    for (const auto& w : pids) {
      v.push_back(process_rss_bytes(w.pid));
    }
    return v;
  };
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(max_ms);
  auto last = read_all();
  int stable = 0;
  while (stable < 3 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(interval_ms));
    auto now = read_all();
    bool same = true;
    for (std::size_t i = 0; i < now.size(); ++i) {
      if (now[i] && last[i] &&
          std::abs(static_cast<double>(*now[i] - *last[i])) >
              0.005 * static_cast<double>(*last[i])) {
        same = false;
      }
    }
    stable = same ? stable + 1 : 0;
    last = std::move(now);
  }
  return last;
}

}  // namespace gwx::bench
