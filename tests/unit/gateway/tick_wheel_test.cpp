// tick_wheel: deadlines of many hooks in one wheel, with ticks passed in (no clock, no timer).
#include "gateway/tick_wheel.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <vector>

namespace gwx::gateway {
namespace {

struct item : tick_wheel::hook {
  explicit item(int i) : id(i) {}
  int id;
};

std::vector<int> advance(tick_wheel& w, std::uint64_t now) {
  std::vector<int> fired;
  w.advance(now, [&](tick_wheel::hook& h) { fired.push_back(static_cast<item&>(h).id); });
  return fired;
}

TEST(TickWheel, FiresAtItsTickNeverBefore) {
  tick_wheel w;
  item a{1};
  w.schedule(a, 5);
  EXPECT_TRUE(a.scheduled());
  EXPECT_TRUE(advance(w, 4).empty());
  EXPECT_EQ(advance(w, 5), std::vector<int>{1});
  EXPECT_FALSE(a.scheduled());
  EXPECT_TRUE(w.empty());
  EXPECT_TRUE(advance(w, 100).empty());
}

TEST(TickWheel, SeveralInOneSlotAndAcrossRounds) {
  tick_wheel w;
  item a{1}, b{2}, c{3};
  w.schedule(a, 10);
  w.schedule(b, 10);
  // Same slot, one round later.
  w.schedule(c, 10 + tick_wheel::k_slots);
  EXPECT_EQ(advance(w, 10), (std::vector<int>{1, 2}));
  EXPECT_TRUE(c.scheduled());
  EXPECT_FALSE(w.empty());
  EXPECT_TRUE(advance(w, 9 + tick_wheel::k_slots).empty());
  EXPECT_EQ(advance(w, 10 + tick_wheel::k_slots), std::vector<int>{3});
}

TEST(TickWheel, CatchesUpAfterALongGap) {
  tick_wheel w;
  item a{1}, b{2};
  w.schedule(a, 3);
  w.schedule(b, 3 * tick_wheel::k_slots + 7);
  // More than a whole round passed at once: everything due fires, the rest waits.
  EXPECT_EQ(advance(w, 2 * tick_wheel::k_slots), std::vector<int>{1});
  EXPECT_EQ(advance(w, 4 * tick_wheel::k_slots), std::vector<int>{2});
}

TEST(TickWheel, PastTicksMeanTheNextOne) {
  tick_wheel w;
  advance(w, 50);
  item a{1};
  w.schedule(a, 20);
  EXPECT_EQ(a.due(), 51u);
  EXPECT_EQ(advance(w, 51), std::vector<int>{1});
}

TEST(TickWheel, RescheduleAndCancel) {
  tick_wheel w;
  item a{1}, b{2};
  w.schedule(a, 5);
  w.schedule(a, 8);  // moved, not doubled
  w.schedule(b, 6);
  b.cancel();
  EXPECT_FALSE(b.scheduled());
  EXPECT_TRUE(advance(w, 7).empty());
  EXPECT_EQ(advance(w, 8), std::vector<int>{1});
}

TEST(TickWheel, DestroyedHooksLeaveTheWheel) {
  tick_wheel w;
  auto gone = std::make_unique<item>(0);
  w.schedule(*gone, 4);
  gone.reset();
  EXPECT_TRUE(w.empty());
  EXPECT_TRUE(advance(w, 10).empty());
}

TEST(TickWheel, CallbacksMayRescheduleAndDestroyOthers) {
  tick_wheel w;
  auto a = std::make_unique<item>(1);
  auto b = std::make_unique<item>(2);
  item c{3};
  w.schedule(*a, 5);
  w.schedule(*b, 5);
  w.schedule(c, 5);
  std::vector<int> fired;
  w.advance(5, [&](tick_wheel::hook& h) {
    auto& it = static_cast<item&>(h);
    fired.push_back(it.id);
    if (it.id == 1) {
      b.reset();          // another entry of the same slot goes away
      w.schedule(it, 3);  // and this one comes back (past: next tick)
    }
  });
  EXPECT_EQ(fired, (std::vector<int>{1, 3}));
  EXPECT_TRUE(a->scheduled());
  EXPECT_EQ(a->due(), 6u);
  EXPECT_EQ(advance(w, 6), std::vector<int>{1});
  EXPECT_TRUE(w.empty());
}

}  // namespace
}  // namespace gwx::gateway
