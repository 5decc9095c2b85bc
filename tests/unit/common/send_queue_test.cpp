#include "common/net/send_queue.hpp"

#include <gtest/gtest.h>

#include <string>

namespace gwx::net {
namespace {

std::string drain(send_queue& q) {
  std::string out;
  while (!q.empty()) {
    for (const auto& b : q.gather()) {
      out.append(static_cast<const char*>(b.data()), b.size());
    }
    q.written();
  }
  return out;
}

TEST(send_queue, small_sends_are_coalesced_into_one_buffer) {
  send_queue q;
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(q.push(std::string_view("abc")), send_status::ok);
  }
  EXPECT_EQ(q.bytes(), 300U);
  EXPECT_EQ(q.gather().size(), 1U);
  q.written();
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.memory(), 0U);
  EXPECT_EQ(q.bytes(), 0U);
}

// A queue batching many small sends (a link) with a minimum segment: each write's frames go
// into one buffer of that size, and the buffer of one write is the next one's (no regrowth).
TEST(send_queue, min_segment_batches_into_one_reused_buffer) {
  send_queue q;
  q.set_min_segment(16 * 1024);
  const void* first_buffer = nullptr;
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 100; ++i) {
      EXPECT_EQ(q.push(std::string_view("eighty bytes of an encoded event, more or less, as a link "
                                        "carries them, one by one")),
                send_status::ok);
    }
    const auto& bufs = q.gather();
    ASSERT_EQ(bufs.size(), 1U);
    if (round == 0) {
      first_buffer = bufs[0].data();
    } else {
      EXPECT_EQ(bufs[0].data(), first_buffer) << "round " << round;
    }
    q.written();
    q.shrink(64 * 1024);  // a drained link keeps one spare of this size at most
    EXPECT_EQ(q.memory(), 0U);
  }
}

TEST(send_queue, order_is_kept_across_shared_and_owned_and_writes_in_flight) {
  send_queue q;
  q.push(std::string_view("1"));
  q.push(std::make_shared<const std::string>("2"));
  q.push(std::string_view("3"));
  const auto& first = q.gather();
  EXPECT_EQ(first.size(), 3U);
  // Sent while a write is in flight: must not be appended into a buffer being written.
  q.push(std::string_view("4"));
  q.written();
  q.push(std::string_view("5"));
  EXPECT_EQ(drain(q), "45");
}

TEST(send_queue, cap_counts_memory_so_tiny_broadcasts_are_bounded_too) {
  send_queue q(10 * 1024);
  auto tiny = std::make_shared<const std::string>("x");
  std::size_t accepted = 0;
  while (q.push(tiny) != send_status::dropped) {
    ++accepted;
  }
  // Each 1-byte broadcast costs its overhead: ~100 fit in 10 KiB, not 10,000.
  EXPECT_LT(accepted, 10 * 1024 / send_queue::k_shared_overhead + 1);
  EXPECT_GT(accepted, 50U);
  EXPECT_LE(q.memory(), q.cap());
}

TEST(send_queue, reports_backpressure_past_high_water_then_drops_at_cap) {
  send_queue q(1000, 400);
  const std::string chunk(100, 'x');
  EXPECT_EQ(q.push(chunk), send_status::ok);
  send_status s = send_status::ok;
  while (s == send_status::ok) {
    s = q.push(chunk);
  }
  EXPECT_EQ(s, send_status::backpressured);
  EXPECT_TRUE(q.over_high_water());
  while (s != send_status::dropped) {
    s = q.push(chunk);
  }
  EXPECT_LE(q.memory(), 1000U + send_queue::k_coalesce_limit);
  drain(q);
  EXPECT_FALSE(q.over_high_water());
  EXPECT_EQ(q.push(chunk), send_status::ok);
}

TEST(send_queue, force_ignores_the_cap) {
  send_queue q(100);
  EXPECT_EQ(q.push(std::string(200, 'x')), send_status::dropped);
  q.force("close frame");
  EXPECT_EQ(drain(q), "close frame");
}

TEST(send_queue, encode_in_place_through_reserve_and_commit) {
  send_queue q(1 << 20);
  auto* out = q.reserve(5);
  ASSERT_NE(out, nullptr);
  out->append("hello");
  EXPECT_EQ(q.commit(), send_status::ok);
  EXPECT_EQ(q.bytes(), 5U);
  EXPECT_EQ(drain(q), "hello");
  send_queue small(10);
  EXPECT_EQ(small.reserve(1000), nullptr);
}

TEST(send_queue, clear_keeps_the_write_in_flight_and_drops_the_rest) {
  send_queue q;
  q.push(std::string_view("in flight"));
  const auto& bufs = q.gather();
  ASSERT_EQ(bufs.size(), 1U);
  q.push(std::string_view("queued"));
  q.clear();
  EXPECT_EQ(std::string(static_cast<const char*>(bufs[0].data()), bufs[0].size()), "in flight");
  q.written();
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.memory(), 0U);
}

TEST(send_queue, gathers_at_most_the_limit_per_write) {
  send_queue q;
  auto b = std::make_shared<const std::string>("b");
  for (std::size_t i = 0; i < send_queue::k_max_gather + 5; ++i) {
    q.push(b);
  }
  EXPECT_EQ(q.gather().size(), send_queue::k_max_gather);
  q.written();
  EXPECT_EQ(q.gather().size(), 5U);
}

TEST(send_queue, prepend_puts_a_shared_buffer_first_by_reference_past_the_cap) {
  send_queue q(200);
  q.push(std::string_view("later"));
  const auto head = std::make_shared<const std::string>(std::string(300, 'h'));
  q.prepend(head);
  EXPECT_EQ(head.use_count(), 2);  // queued by reference, not copied
  EXPECT_EQ(q.bytes(), 305U);
  EXPECT_GT(q.memory(), q.cap());  // accepted earlier: the cap does not apply again
  EXPECT_EQ(drain(q), std::string(300, 'h') + "later");
  EXPECT_EQ(q.memory(), 0U);
  EXPECT_EQ(head.use_count(), 1);
}

TEST(send_queue, prepend_of_a_partly_written_buffer_queues_only_its_rest) {
  send_queue q;
  const auto head = std::make_shared<const std::string>("0123456789");
  q.prepend(head, 4);
  q.push(std::string_view("!"));
  EXPECT_EQ(head.use_count(), 1);  // the rest was copied
  EXPECT_EQ(q.bytes(), 7U);
  EXPECT_EQ(drain(q), "456789!");
  EXPECT_EQ(q.memory(), 0U);
}

}  // namespace
}  // namespace gwx::net
