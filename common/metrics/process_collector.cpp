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

namespace {

prometheus::MetricFamily single(const char* name, const char* help, prometheus::MetricType type,
                                double value) {
  prometheus::MetricFamily family{name, help, type, {}};
  prometheus::ClientMetric metric;
  if (type == prometheus::MetricType::Counter) {
    metric.counter.value = value;
  } else {
    metric.gauge.value = value;
  }
  family.metric.push_back(std::move(metric));
  return family;
}

}  // namespace

process_collectable::process_collectable() {
  const auto stats = read_process_stats();
  start_time_seconds_ = stats ? stats->start_time_seconds : 0;
}

const std::vector<std::string>& process_collectable::family_names() {
  static const std::vector<std::string> names = {"process_cpu_seconds_total",
                                                 "process_resident_memory_bytes",
                                                 "process_virtual_memory_bytes",
                                                 "process_open_fds",
                                                 "process_max_fds",
                                                 "process_start_time_seconds",
                                                 "gwx_build_info"};
  return names;
}

std::vector<prometheus::MetricFamily> process_collectable::Collect() const {
  using prometheus::MetricType;
  std::vector<prometheus::MetricFamily> out;
  // /proc is read afresh at each scrape: a few microseconds, and always current.
  if (const auto stats = read_process_stats()) {
    out.push_back(single("process_cpu_seconds_total",
                         "Total user and system CPU time spent in seconds.", MetricType::Counter,
                         stats->cpu_seconds));
    out.push_back(single("process_resident_memory_bytes", "Resident memory size in bytes.",
                         MetricType::Gauge, stats->resident_memory_bytes));
    out.push_back(single("process_virtual_memory_bytes", "Virtual memory size in bytes.",
                         MetricType::Gauge, stats->virtual_memory_bytes));
    out.push_back(single("process_open_fds", "Number of open file descriptors.", MetricType::Gauge,
                         stats->open_fds));
    out.push_back(single("process_max_fds", "Maximum number of open file descriptors.",
                         MetricType::Gauge, stats->max_fds));
    out.push_back(single("process_start_time_seconds",
                         "Start time of the process since unix epoch in seconds.",
                         MetricType::Gauge, start_time_seconds_));
  }
  auto build = single("gwx_build_info", "The gwx version this binary was built from (1).",
                      MetricType::Gauge, 1);
  build.metric.front().label.push_back({"version", GWX_VERSION});
  out.push_back(std::move(build));
  return out;
}

process_collector::process_collector(registry& reg)
    : registration_(reg.add_collectable(std::make_shared<process_collectable>(),
                                        process_collectable::family_names())) {}

}  // namespace gwx::metrics
