// event_recycler: an object let go comes back on the next make() of the thread that let it go,
// reset but with its buffer; large ones, and those over the bound, are freed; objects let go
// on another thread are that thread's to reuse; a thread's stock is freed when it ends.
#include "gateway/event_recycler.hpp"

#include <gtest/gtest.h>

#include <string>
#include <thread>

namespace gwx::gateway {
namespace {

struct item {
  static int alive;
  item() { ++alive; }
  ~item() { --alive; }
  item(const item&) = delete;
  item& operator=(const item&) = delete;

  std::string text;
  int value = 0;
  void recycle() {
    text.clear();
    value = 0;
  }
  bool worth_keeping() const { return text.capacity() <= 64; }
};
int item::alive = 0;

using small_recycler = event_recycler<item, 4>;

// Each test runs on a thread of its own, so that it starts and ends with an empty stock.
template <typename F>
void on_fresh_thread(F f) {
  std::thread t(f);
  t.join();
}

TEST(EventRecycler, ObjectComesBackResetWithItsBuffer) {
  on_fresh_thread([] {
    const std::string text(40, 't');  // past the small-string buffer: on the heap
    const char* buffer = nullptr;
    {
      auto a = small_recycler::make();
      a->text = text;
      a->value = 7;
      buffer = a->text.data();
    }
    EXPECT_EQ(small_recycler::stocked(), 1U);
    auto b = small_recycler::make();
    EXPECT_EQ(small_recycler::stocked(), 0U);
    EXPECT_EQ(b->text, "");
    EXPECT_EQ(b->value, 0);
    EXPECT_EQ(b->text.data(), buffer);  // the same heap buffer, not a new one
    EXPECT_GE(b->text.capacity(), text.size());
  });
  EXPECT_EQ(item::alive, 0);
}

TEST(EventRecycler, LargeObjectsAndThoseOverTheBoundAreFreed) {
  on_fresh_thread([] {
    {
      auto big = small_recycler::make();
      big->text.assign(1000, 'x');
    }
    EXPECT_EQ(small_recycler::stocked(), 0U);
    EXPECT_EQ(item::alive, 0);
    {
      std::vector<std::shared_ptr<item>> many;
      for (int i = 0; i < 10; ++i) {
        many.push_back(small_recycler::make());
      }
      EXPECT_EQ(item::alive, 10);
    }
    EXPECT_EQ(small_recycler::stocked(), 4U);
    EXPECT_EQ(item::alive, 4);
  });
  EXPECT_EQ(item::alive, 0);  // the thread's stock went with it
}

TEST(EventRecycler, LetGoOnAnotherThreadGoesToThatThreadsStock) {
  on_fresh_thread([] {
    auto a = small_recycler::make();
    a->value = 5;
    std::size_t stocked_there = 0;
    std::thread other([&stocked_there, a = std::move(a)]() mutable {
      a.reset();
      stocked_there = small_recycler::stocked();
    });
    other.join();
    EXPECT_EQ(stocked_there, 1U);
    EXPECT_EQ(small_recycler::stocked(), 0U);
  });
  EXPECT_EQ(item::alive, 0);
}

TEST(EventRecycler, AnObjectStillSharedIsNotReused) {
  on_fresh_thread([] {
    auto a = small_recycler::make();
    a->value = 1;
    auto still = a;
    a.reset();
    EXPECT_EQ(small_recycler::stocked(), 0U);
    auto b = small_recycler::make();
    EXPECT_NE(b.get(), still.get());
    EXPECT_EQ(still->value, 1);
  });
  EXPECT_EQ(item::alive, 0);
}

}  // namespace
}  // namespace gwx::gateway
