#include "common/metrics/text_format.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>

namespace gwx::metrics {
namespace {

std::string dbl(double value) {
  std::string out;
  append_double(out, value);
  return out;
}

TEST(MetricsTextFormat, MetricNames) {
  EXPECT_TRUE(valid_metric_name("gwx_gateway_connections"));
  EXPECT_TRUE(valid_metric_name("_x"));
  EXPECT_TRUE(valid_metric_name("job:rate5m"));
  EXPECT_TRUE(valid_metric_name("a1"));
  EXPECT_FALSE(valid_metric_name(""));
  EXPECT_FALSE(valid_metric_name("1a"));
  EXPECT_FALSE(valid_metric_name("a-b"));
  EXPECT_FALSE(valid_metric_name("a b"));
  EXPECT_FALSE(valid_metric_name("gwx.requests"));
}

TEST(MetricsTextFormat, LabelNames) {
  EXPECT_TRUE(valid_label_name("listener"));
  EXPECT_TRUE(valid_label_name("_x1"));
  EXPECT_FALSE(valid_label_name(""));
  EXPECT_FALSE(valid_label_name("__name__"));
  EXPECT_FALSE(valid_label_name("1x"));
  EXPECT_FALSE(valid_label_name("a:b"));
  EXPECT_FALSE(valid_label_name("a-b"));
}

TEST(MetricsTextFormat, LabelValueEscaping) {
  std::string out;
  append_escaped_label_value(out, "a\\b\"c\nd\te");
  EXPECT_EQ(out, "a\\\\b\\\"c\\nd\te");
  out.clear();
  append_escaped_label_value(out, "ws://0.0.0.0:8080/chat?x=ü");
  EXPECT_EQ(out, "ws://0.0.0.0:8080/chat?x=ü");
}

TEST(MetricsTextFormat, HelpEscapingKeepsQuotes) {
  std::string out;
  append_escaped_help(out, "say \"hi\"\\\nnext");
  EXPECT_EQ(out, "say \"hi\"\\\\\\nnext");
}

TEST(MetricsTextFormat, Numbers) {
  EXPECT_EQ(dbl(0), "0");
  EXPECT_EQ(dbl(1), "1");
  EXPECT_EQ(dbl(-2.5), "-2.5");
  EXPECT_EQ(dbl(0.1), "0.1");
  EXPECT_EQ(dbl(0.0001), "0.0001");
  EXPECT_EQ(dbl(0.00005), "5e-05");
  EXPECT_EQ(dbl(100000), "100000");
  EXPECT_EQ(dbl(1e6), "1e+06");
  EXPECT_EQ(dbl(123456789), "1.23456789e+08");
  EXPECT_EQ(dbl(0.1 + 0.2), "0.30000000000000004");  // round-trips, not rounded to 6 digits
  EXPECT_EQ(dbl(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(dbl(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(dbl(std::numeric_limits<double>::quiet_NaN()), "NaN");
  std::string out;
  append_uint(out, std::numeric_limits<std::uint64_t>::max());
  EXPECT_EQ(out, "18446744073709551615");
  out.clear();
  append_int(out, std::numeric_limits<std::int64_t>::min());
  EXPECT_EQ(out, "-9223372036854775808");
}

}  // namespace
}  // namespace gwx::metrics
