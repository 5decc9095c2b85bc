#include "gateway/event_fifo.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace gwx::gateway {
namespace {

using fifo = event_fifo<std::shared_ptr<std::string>>;

std::shared_ptr<std::string> item(std::string s) {
  return std::make_shared<std::string>(std::move(s));
}

TEST(EventFifo, KeepsOrderAcrossCompactionAndErase) {
  fifo f;
  for (int i = 0; i < 100; ++i) {
    f.push_back(item(std::to_string(i)));
  }
  for (int i = 0; i < 60; ++i) {
    EXPECT_EQ(*f.pop_front(), std::to_string(i));
  }
  EXPECT_TRUE(f.erase_first([](const auto& p) { return *p == "70"; }));
  EXPECT_FALSE(f.erase_first([](const auto& p) { return *p == "70"; }));
  EXPECT_EQ(f.size(), 39U);
  const auto rest = f.take_all();
  ASSERT_EQ(rest.size(), 39U);
  EXPECT_EQ(*rest.front(), "60");
  EXPECT_EQ(*rest.back(), "99");
  EXPECT_TRUE(f.empty());
}

TEST(EventFifo, AnEmptiedFifoReleasesItsItemsAndItsStorageServesTheNextOne) {
  auto first = item("first");
  std::weak_ptr<std::string> watch = first;
  fifo a;
  a.push_back(std::move(first));
  a.push_back(item("second"));
  a.clear();  // its storage goes to the thread's spares, its items do not
  EXPECT_TRUE(a.empty());
  EXPECT_TRUE(watch.expired()) << "a spare storage must not keep the items it held alive";

  fifo b;
  b.push_back(item("b1"));
  EXPECT_EQ(b.size(), 1U);
  EXPECT_EQ(*b.front(), "b1");
  // The first FIFO, used again, starts empty too.
  a.push_back(item("a1"));
  EXPECT_EQ(a.size(), 1U);
  EXPECT_EQ(*a.pop_front(), "a1");
  EXPECT_EQ(*b.pop_front(), "b1");
}

TEST(EventFifo, ManyFifosEmptiedAtOnceAndOtherThreadsStayCorrect) {
  // More emptied at once than the spares keep: the rest is freed, every FIFO stays usable.
  std::vector<fifo> many(fifo::k_spares * 2);
  for (auto& f : many) {
    f.push_back(item("x"));
  }
  for (auto& f : many) {
    f.pop_front();
  }
  std::thread other([] {
    fifo f;
    for (int i = 0; i < 10; ++i) {
      f.push_back(item(std::to_string(i)));
    }
    for (int i = 0; i < 10; ++i) {
      EXPECT_EQ(*f.pop_front(), std::to_string(i));
    }
  });
  other.join();
  for (std::size_t i = 0; i < many.size(); ++i) {
    many[i].push_back(item(std::to_string(i)));
    many[i].push_back(item("y"));
  }
  for (std::size_t i = 0; i < many.size(); ++i) {
    ASSERT_EQ(many[i].size(), 2U);
    EXPECT_EQ(*many[i].pop_front(), std::to_string(i));
  }
}

}  // namespace
}  // namespace gwx::gateway
