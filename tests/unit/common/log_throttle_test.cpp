// log_throttle: the first occurrence is logged, then at most one line per interval, each line
// covering the occurrences since the one before.
#include <gtest/gtest.h>

#include "common/logging.hpp"

namespace gwx {
namespace {

using namespace std::chrono_literals;

TEST(LogThrottle, OneLinePerIntervalCoveringWhatCameBetween) {
  log_throttle t(10s);
  const auto start = log_throttle::clock::now();
  EXPECT_TRUE(t.count(start));
  EXPECT_EQ(t.take_pending(), 1U);
  for (int i = 1; i <= 5; ++i) {
    EXPECT_FALSE(t.count(start + std::chrono::seconds(i)));
  }
  EXPECT_TRUE(t.count(start + 10s));
  EXPECT_EQ(t.take_pending(), 6U) << "five held back and this one";
  EXPECT_FALSE(t.count(start + 19s)) << "the interval counts from the last line";
  EXPECT_TRUE(t.count(start + 20s));
  EXPECT_EQ(t.take_pending(), 2U);
  EXPECT_EQ(t.total(), 9U);
}

}  // namespace
}  // namespace gwx
