// write_batch: the per-turn list of connections to write, with broadcast heads held once.
#include "gateway/write_batch.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace gwx::gateway {
namespace {

struct target {
  int id = 0;
};

using written = std::vector<std::pair<int, const std::string*>>;

written run(write_batch<target>& batch) {
  written out;
  batch.run([&](target& t, const wire_bytes* head) {
    out.emplace_back(t.id, head != nullptr ? head->get() : nullptr);
  });
  return out;
}

TEST(WriteBatch, ABroadcastHoldsItsBufferOnceForEveryRecipient) {
  write_batch<target> batch;
  std::vector<target> clients(900);
  const auto message = std::make_shared<const std::string>("hello");
  for (std::size_t i = 0; i < clients.size(); ++i) {
    clients[i].id = static_cast<int>(i);
    batch.add(clients[i], message);
  }
  EXPECT_EQ(batch.size(), 900U);
  EXPECT_EQ(batch.buffers_held(), 1U);
  EXPECT_EQ(message.use_count(), 2);  // ours and the batch's: no reference per recipient

  const auto out = run(batch);
  ASSERT_EQ(out.size(), 900U);
  for (std::size_t i = 0; i < out.size(); ++i) {
    EXPECT_EQ(out[i].first, static_cast<int>(i));  // in the order asked
    EXPECT_EQ(out[i].second, message.get());       // the very buffer, not a copy
  }
  EXPECT_EQ(message.use_count(), 1);  // let go once run
  EXPECT_TRUE(batch.empty());
}

TEST(WriteBatch, EachBroadcastIsHeldOnceAndEntriesWithoutHeadGetNone) {
  write_batch<target> batch;
  target a{1};
  target b{2};
  target c{3};
  const auto first = std::make_shared<const std::string>("one");
  const auto second = std::make_shared<const std::string>("two");
  batch.add(a, first);
  batch.add(b, first);
  batch.add(c);  // its bytes are in its own queue
  batch.add(a, second);
  EXPECT_EQ(batch.buffers_held(), 2U);
  EXPECT_EQ(run(batch),
            (written{{1, first.get()}, {2, first.get()}, {3, nullptr}, {1, second.get()}}));
  EXPECT_EQ(first.use_count(), 1);
  EXPECT_EQ(second.use_count(), 1);
}

TEST(WriteBatch, EntriesAddedWhileRunningFormTheNextBatch) {
  write_batch<target> batch;
  target a{1};
  target b{2};
  batch.add(a);
  std::vector<int> seen;
  batch.run([&](target& t, const wire_bytes*) {
    seen.push_back(t.id);
    batch.add(b);  // e.g. a write completing asks again
  });
  EXPECT_EQ(seen, std::vector<int>{1});
  EXPECT_EQ(batch.size(), 1U);
  EXPECT_EQ(run(batch), (written{{2, nullptr}}));
  EXPECT_TRUE(batch.empty());
}

TEST(WriteBatch, AKeptTargetLivesUntilItsBatchHasRun) {
  write_batch<target> batch;
  auto closing = std::make_shared<target>(target{7});
  const std::weak_ptr<target> watch = closing;
  batch.add(*closing, std::make_shared<const std::string>("bye"));
  batch.keep(std::move(closing));  // its owner let go (the connection closed meanwhile)
  EXPECT_FALSE(watch.expired());
  bool alive_when_written = false;
  batch.run([&](target&, const wire_bytes*) { alive_when_written = !watch.expired(); });
  EXPECT_TRUE(alive_when_written);
  EXPECT_TRUE(watch.expired());
  EXPECT_TRUE(batch.empty());
}

}  // namespace
}  // namespace gwx::gateway
