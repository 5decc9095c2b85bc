#include "common/metrics/histogram.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/metrics/registry.hpp"

namespace gwx::metrics {
namespace {

using counts = std::vector<std::uint64_t>;

TEST(MetricsHistogram, BoundsAreInclusiveUpperLimits) {
  registry reg;
  auto h = reg.add_histogram("gwx_test_size_bytes", "Sizes.", {10, 100, 1000}).with();
  for (const double v : {-5.0, 0.0, 10.0, 10.5, 100.0, 999.0, 1000.0, 1000.001, 1e9}) {
    h.observe(v);
  }
  const auto snap = h.snapshot();
  EXPECT_EQ(snap.bounds, (std::vector<double>{10, 100, 1000}));
  // <=10: -5, 0, 10; <=100: +10.5, 100; <=1000: +999, 1000; +Inf: +1000.001, 1e9
  EXPECT_EQ(snap.cumulative, (counts{3, 5, 7, 9}));
  EXPECT_EQ(snap.count, 9U);
  EXPECT_DOUBLE_EQ(snap.sum, -5 + 0 + 10 + 10.5 + 100 + 999 + 1000 + 1000.001 + 1e9);
}

TEST(MetricsHistogram, InfinitiesAndNaN) {
  registry reg;
  auto h = reg.add_histogram("gwx_test_v", "V.", {0}).with();
  h.observe(-std::numeric_limits<double>::infinity());
  h.observe(std::numeric_limits<double>::infinity());
  h.observe(std::numeric_limits<double>::quiet_NaN());  // ignored
  const auto snap = h.snapshot();
  EXPECT_EQ(snap.cumulative, (counts{1, 2}));
  EXPECT_EQ(snap.count, 2U);
}

TEST(MetricsHistogram, DurationsInSeconds) {
  registry reg;
  auto h = reg.add_histogram("gwx_test_latency_seconds", "L.", latency_buckets()).with();
  h.observe(std::chrono::microseconds(75));  // <= 0.0001
  h.observe(std::chrono::milliseconds(1));   // <= 0.001
  h.observe(std::chrono::seconds(20));       // +Inf
  const auto snap = h.snapshot();
  ASSERT_EQ(snap.cumulative.size(), latency_buckets().size() + 1);
  EXPECT_EQ(snap.cumulative[0], 0U);                             // 0.00005
  EXPECT_EQ(snap.cumulative[1], 1U);                             // 0.0001
  EXPECT_EQ(snap.cumulative[4], 2U);                             // 0.001
  EXPECT_EQ(snap.cumulative[latency_buckets().size() - 1], 2U);  // 10
  EXPECT_EQ(snap.count, 3U);
  EXPECT_DOUBLE_EQ(snap.sum, 0.000075 + 0.001 + 20);
}

TEST(MetricsHistogram, LeLabelsAreWrittenLikeTheGoClientWritesThem) {
  registry reg;
  reg.add_histogram("gwx_test_rtt_seconds", "RTT.", latency_buckets()).with();
  const auto text = reg.expose();
  std::string les;
  for (std::size_t pos = text.find("le=\""); pos != std::string::npos;
       pos = text.find("le=\"", pos + 1)) {
    les += text.substr(pos + 4, text.find('"', pos + 4) - pos - 4) + " ";
  }
  EXPECT_EQ(les,
            "5e-05 0.0001 0.00025 0.0005 0.001 0.0025 0.005 0.01 0.025 0.05 0.1 0.25 0.5 1 2.5 5 "
            "10 +Inf ");
}

TEST(MetricsHistogram, NoBoundsMeansOnlyInf) {
  registry reg;
  auto& family = reg.add_histogram("gwx_test_any", "Any.", {});
  family.with().observe(5);
  EXPECT_EQ(reg.expose(),
            "# HELP gwx_test_any Any.\n# TYPE gwx_test_any histogram\n"
            "gwx_test_any_count 1\ngwx_test_any_sum 5\ngwx_test_any_bucket{le=\"+Inf\"} 1\n");
}

TEST(MetricsHistogram, ChildrenAreIndependent) {
  registry reg;
  auto& family = reg.add_histogram("gwx_test_rtt_seconds", "RTT.", {1}, {"worker"});
  family.with({"w1"}).observe(0.5);
  family.with({"w2"}).observe(2);
  family.with({"w2"}).observe(3);
  EXPECT_EQ(family.with({"w1"}).snapshot().cumulative, (counts{1, 1}));
  EXPECT_EQ(family.with({"w2"}).snapshot().cumulative, (counts{0, 2}));
}

TEST(MetricsHistogram, BucketHelpers) {
  EXPECT_EQ(exponential_buckets(1, 2, 4), (std::vector<double>{1, 2, 4, 8}));
  EXPECT_EQ(linear_buckets(5, 5, 3), (std::vector<double>{5, 10, 15}));
  EXPECT_THROW(exponential_buckets(0, 2, 3), std::invalid_argument);
  EXPECT_THROW(exponential_buckets(1, 1, 3), std::invalid_argument);
  EXPECT_THROW(linear_buckets(0, 0, 3), std::invalid_argument);
  const auto latency = latency_buckets();
  EXPECT_NO_THROW(checked_buckets(latency));
  EXPECT_EQ(latency.front(), 0.00005);
  EXPECT_EQ(latency.back(), 10);
}

TEST(MetricsHistogram, CheckedBuckets) {
  const double inf = std::numeric_limits<double>::infinity();
  EXPECT_EQ(checked_buckets({1, 2, inf}), (std::vector<double>{1, 2}));
  EXPECT_THROW(checked_buckets({1, 1}), std::invalid_argument);
  EXPECT_THROW(checked_buckets({2, 1}), std::invalid_argument);
  EXPECT_THROW(checked_buckets({-inf, 1}), std::invalid_argument);
  EXPECT_THROW(checked_buckets({1, std::numeric_limits<double>::quiet_NaN()}),
               std::invalid_argument);
}

}  // namespace
}  // namespace gwx::metrics
