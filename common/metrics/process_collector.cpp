#include "common/metrics/process_collector.hpp"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <charconv>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>

#include "common/metrics/registry.hpp"

#ifndef GWX_VERSION
#define GWX_VERSION "unknown"
#endif

namespace gwx::metrics {
namespace {

std::optional<std::string> read_file(const char* path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return std::nullopt;
  }
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

bool parse_u64(std::string_view text, std::uint64_t& value) {
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  return ec == std::errc() && end == text.data() + text.size();
}

std::optional<double> boot_time_seconds() {
  const auto text = read_file("/proc/stat");
  if (!text) {
    return std::nullopt;
  }
  std::istringstream lines(*text);
  std::string line;
  while (std::getline(lines, line)) {
    std::uint64_t value = 0;
    if (line.starts_with("btime ") && parse_u64(std::string_view(line).substr(6), value)) {
      return static_cast<double>(value);
    }
  }
  return std::nullopt;
}

std::optional<double> count_open_fds() {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) {
    return std::nullopt;
  }
  double count = 0;
  while (const dirent* entry = readdir(dir)) {
    if (entry->d_name[0] != '.') {
      ++count;
    }
  }
  closedir(dir);
  return count - 1;  // the directory stream's own descriptor
}

}  // namespace

std::optional<proc_stat> parse_proc_stat(std::string_view text) {
  // "pid (comm) state ppid …": comm may contain anything, so fields start after the last ')'.
  const auto close = text.rfind(')');
  if (close == std::string_view::npos) {
    return std::nullopt;
  }
  std::vector<std::string_view> fields;  // fields[0] is field 3 (state) of proc(5)
  std::size_t pos = close + 1;
  while (pos < text.size()) {
    while (pos < text.size() && (text[pos] == ' ' || text[pos] == '\n')) {
      ++pos;
    }
    const auto start = pos;
    while (pos < text.size() && text[pos] != ' ' && text[pos] != '\n') {
      ++pos;
    }
    if (pos > start) {
      fields.push_back(text.substr(start, pos - start));
    }
  }
  const auto field = [&](std::size_t number, std::uint64_t& value) {
    return number - 3 < fields.size() && parse_u64(fields[number - 3], value);
  };
  proc_stat stat;
  if (!field(14, stat.utime_ticks) || !field(15, stat.stime_ticks) ||
      !field(22, stat.start_ticks) || !field(23, stat.vsize_bytes) || !field(24, stat.rss_pages)) {
    return std::nullopt;
  }
  return stat;
}

std::optional<process_stats> read_process_stats() {
  const auto text = read_file("/proc/self/stat");
  if (!text) {
    return std::nullopt;
  }
  const auto stat = parse_proc_stat(*text);
  const auto boot = boot_time_seconds();
  const auto fds = count_open_fds();
  if (!stat || !boot || !fds) {
    return std::nullopt;
  }
  const auto ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  const auto page = static_cast<double>(sysconf(_SC_PAGESIZE));
  process_stats stats;
  stats.cpu_seconds = static_cast<double>(stat->utime_ticks + stat->stime_ticks) / ticks;
  stats.resident_memory_bytes = static_cast<double>(stat->rss_pages) * page;
  stats.virtual_memory_bytes = static_cast<double>(stat->vsize_bytes);
  stats.start_time_seconds = *boot + static_cast<double>(stat->start_ticks) / ticks;
  stats.open_fds = *fds;
  rlimit limit{};
  stats.max_fds = getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY
                      ? static_cast<double>(limit.rlim_cur)
                      : 0;
  return stats;
}

process_collector::process_collector(registry& reg) {
  // Each callback reads /proc afresh: a few microseconds per scrape, and always current. Without
  // /proc the reader throws, which leaves the sample out.
  struct figure {
    const char* name;
    const char* help;
    double process_stats::*field;
  };
  const figure gauges[] = {
      {"process_resident_memory_bytes", "Resident memory size in bytes.",
       &process_stats::resident_memory_bytes},
      {"process_virtual_memory_bytes", "Virtual memory size in bytes.",
       &process_stats::virtual_memory_bytes},
      {"process_open_fds", "Number of open file descriptors.", &process_stats::open_fds},
      {"process_max_fds", "Maximum number of open file descriptors.", &process_stats::max_fds},
  };
  const auto reader = [](double process_stats::*field) {
    return [field] {
      const auto stats = read_process_stats();
      if (!stats) {
        throw std::runtime_error("/proc unavailable");
      }
      return (*stats).*field;
    };
  };
  registrations_.push_back(reg.add_callback_counter("process_cpu_seconds_total",
                                                    "Total user and system CPU time spent in "
                                                    "seconds.")
                               .add({}, reader(&process_stats::cpu_seconds)));
  for (const auto& gauge : gauges) {
    registrations_.push_back(
        reg.add_callback_gauge(gauge.name, gauge.help).add({}, reader(gauge.field)));
  }
  const auto start = read_process_stats();
  const double start_time = start ? start->start_time_seconds : 0;
  registrations_.push_back(
      reg.add_callback_gauge("process_start_time_seconds",
                             "Start time of the process since unix epoch in seconds.")
          .add({}, [start_time] { return start_time; }));
  registrations_.push_back(reg.add_callback_gauge("gwx_build_info",
                                                  "The gwx version this binary was built from (1).",
                                                  {"version"})
                               .add({GWX_VERSION}, [] { return 1.0; }));
}

}  // namespace gwx::metrics
