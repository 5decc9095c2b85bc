#include "common/net/io_context_pool.hpp"

#include <gtest/gtest.h>

#include <asio.hpp>
#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <stdexcept>
#include <thread>

namespace gwx {
namespace {

using namespace std::chrono_literals;

// What a queued handler owns: it says when it is destroyed.
struct owned {
  explicit owned(std::atomic<int>& gone) : gone_(gone) {}
  ~owned() { ++gone_; }
  std::atomic<int>& gone_;
};

TEST(IoContextPool, RefusesNoLoopsAndAbsurdlyMany) {
  EXPECT_THROW(io_context_pool(0), std::invalid_argument);
  EXPECT_THROW(io_context_pool(257), std::invalid_argument);
}

TEST(IoContextPool, EachLoopRunsItsHandlersOnItsOwnThread) {
  io_context_pool pool(2);
  pool.start();
  std::promise<std::thread::id> a;
  std::promise<std::thread::id> b;
  asio::post(pool.loop(0), [&a] { a.set_value(std::this_thread::get_id()); });
  asio::post(pool.loop(1), [&b] { b.set_value(std::this_thread::get_id()); });
  const auto ta = a.get_future().get();
  const auto tb = b.get_future().get();
  EXPECT_NE(ta, tb);
  EXPECT_NE(ta, std::this_thread::get_id());
  pool.stop();
}

TEST(IoContextPool, DiscardPendingDestroysQueuedAndWaitingHandlersWithoutRunningThem) {
  std::atomic<int> gone{0};
  std::atomic<int> ran{0};
  io_context_pool pool(2);
  pool.start();
  pool.stop();
  // Queued in stopped loops: a posted task and a timer wait, each owning an object.
  asio::post(pool.loop(0), [o = std::make_shared<owned>(gone), &ran] { ++ran; });
  asio::steady_timer timer(pool.loop(1));
  timer.expires_after(1h);
  timer.async_wait([o = std::make_shared<owned>(gone), &ran](std::error_code) { ++ran; });
  EXPECT_EQ(gone.load(), 0);
  pool.discard_pending();
  // Destroyed now, while the pool (and the timer) still exist; never run.
  EXPECT_EQ(gone.load(), 2);
  EXPECT_EQ(ran.load(), 0);
}

TEST(IoContextPool, WithoutDiscardPendingQueuedHandlersLiveUntilThePoolGoes) {
  std::atomic<int> gone{0};
  {
    io_context_pool pool(1);
    asio::post(pool.loop(0), [o = std::make_shared<owned>(gone)] {});
    pool.stop();
    EXPECT_EQ(gone.load(), 0);  // what discard_pending() is for: this lives on past stop()
  }
  EXPECT_EQ(gone.load(), 1);
}

}  // namespace
}  // namespace gwx
