#include "common/metrics/process_collector.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <regex>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/metrics/registry.hpp"

namespace gwx::metrics {
namespace {

double sample(const std::string& text, const std::string& name) {
  const std::regex line("(^|\n)" + name + " ([^\n]+)\n");
  std::smatch match;
  if (!std::regex_search(text, match, line)) {
    ADD_FAILURE() << "no sample " << name << " in:\n" << text;
    return -1;
  }
  return std::stod(match[2]);
}

TEST(MetricsProcess, ParsesProcStatWithAWeirdCommandName) {
  const std::string text =
      "4242 (gwx (x) y) S 1 4242 4242 0 -1 4194560 300 0 0 0 "
      "150 25 0 0 20 0 3 0 987654 123456789 2500 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 "
      "17 1 0 0 0 0 0\n";
  const auto stat = parse_proc_stat(text);
  ASSERT_TRUE(stat.has_value());
  EXPECT_EQ(stat->utime_ticks, 150U);
  EXPECT_EQ(stat->stime_ticks, 25U);
  EXPECT_EQ(stat->start_ticks, 987654U);
  EXPECT_EQ(stat->vsize_bytes, 123456789U);
  EXPECT_EQ(stat->rss_pages, 2500U);
  EXPECT_FALSE(parse_proc_stat("4242 (cut) S 1 2 3").has_value());
  EXPECT_FALSE(parse_proc_stat("no parenthesis").has_value());
}

TEST(MetricsProcess, ReadsSaneValuesOfThisProcess) {
  const auto before = read_process_stats();
  ASSERT_TRUE(before.has_value());
  std::vector<int> fds;
  fds.reserve(8);
  for (int i = 0; i < 8; ++i) {
    fds.push_back(open("/dev/null", O_RDONLY | O_CLOEXEC));
  }
  const auto after = read_process_stats();
  for (const int fd : fds) {
    close(fd);
  }
  ASSERT_TRUE(after.has_value());
  EXPECT_GE(after->open_fds, before->open_fds + 8);
  EXPECT_GE(before->open_fds, 3);  // stdin, stdout, stderr at least
  EXPECT_GT(before->resident_memory_bytes, 1 << 20);
  EXPECT_GE(before->virtual_memory_bytes, before->resident_memory_bytes);
  EXPECT_GE(before->cpu_seconds, 0);
  EXPECT_GE(before->max_fds, before->open_fds);
  const double now =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  // Started before now, and not before the test binary could have been started (allow a day of
  // clock skew between boot-time accounting and the wall clock).
  EXPECT_LE(before->start_time_seconds, now + 1);
  EXPECT_GT(before->start_time_seconds, now - 86400);
}

TEST(MetricsProcess, CollectorExposesProcessMetricsAndBuildInfo) {
  registry reg;
  {
    process_collector collector(reg);
    const auto text = reg.expose();
    EXPECT_NE(text.find("# TYPE process_cpu_seconds_total counter\n"), std::string::npos);
    EXPECT_GT(sample(text, "process_resident_memory_bytes"), 1 << 20);
    EXPECT_GE(sample(text, "process_open_fds"), 3);
    EXPECT_GT(sample(text, "process_max_fds"), 0);
    EXPECT_GT(sample(text, "process_virtual_memory_bytes"), 0);
    EXPECT_GT(sample(text, "process_start_time_seconds"), 1e9);
    EXPECT_GE(sample(text, "process_cpu_seconds_total"), 0);
    EXPECT_TRUE(std::regex_search(
        text, std::regex("\ngwx_build_info\\{version=\"[0-9]+\\.[0-9]+\\.[0-9]+\"\\} 1\n")))
        << text;
  }
  // Destroyed: the samples go, and the names are free again.
  EXPECT_EQ(reg.expose().find("process_open_fds"), std::string::npos);
  EXPECT_NO_THROW(process_collector{reg});
}

TEST(MetricsProcess, CollectorNamesCannotBeTakenTwice) {
  registry reg;
  process_collector collector(reg);
  EXPECT_THROW(process_collector{reg}, std::invalid_argument);
  EXPECT_THROW(reg.add_gauge("process_open_fds", "Mine."), std::invalid_argument);
  EXPECT_THROW(reg.add_callback_counter("process_cpu_seconds_total", "Mine."),
               std::invalid_argument);
  registry other;
  other.add_gauge("process_max_fds", "Mine.");
  EXPECT_THROW(process_collector{other}, std::invalid_argument);
}

}  // namespace
}  // namespace gwx::metrics
