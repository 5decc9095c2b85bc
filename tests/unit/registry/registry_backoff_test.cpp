#include <gtest/gtest.h>

#include "common/registry/backoff.hpp"

namespace gwx::registry {
namespace {

using std::chrono::milliseconds;

TEST(RegistryBackoff, GrowsWithJitterUpToTheCapAndResets) {
  backoff delays(milliseconds(100), milliseconds(2000), 42);
  milliseconds ceiling(100);
  for (int i = 0; i < 12; ++i) {
    const auto delay = delays.next();
    EXPECT_GE(delay, ceiling / 2) << "attempt " << i;
    EXPECT_LE(delay, ceiling) << "attempt " << i;
    ceiling = std::min(ceiling * 2, milliseconds(2000));
  }
  delays.reset();
  EXPECT_LE(delays.next(), milliseconds(100));
}

TEST(RegistryBackoff, JitterSpreadsPeers) {
  backoff first(milliseconds(1000), milliseconds(2000), 1);
  backoff second(milliseconds(1000), milliseconds(2000), 2);
  bool differ = false;
  for (int i = 0; i < 5; ++i) {
    differ = differ || first.next() != second.next();
  }
  EXPECT_TRUE(differ);
}

}  // namespace
}  // namespace gwx::registry
