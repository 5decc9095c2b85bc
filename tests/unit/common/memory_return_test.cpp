// memory_returner: freed heap memory is given back once more than the threshold of it is held
// beyond what the last return left, once per burst, never for memory that cannot go.
#include "common/memory_return.hpp"

#include <gtest/gtest.h>

#include <asio/io_context.hpp>
#include <chrono>

namespace gwx {
namespace {

using namespace std::chrono_literals;
constexpr std::size_t MiB = 1 << 20;

/// A process whose memory the test sets: `resident` and `in_use`; a return gives back
/// `returnable` of the resident bytes.
struct fake_process {
  std::size_t resident = 30 * MiB;
  std::size_t in_use = 10 * MiB;
  std::size_t returnable = 0;
  int readings = 0;
  int returns = 0;

  memory_returner make(asio::io_context& io, std::size_t threshold,
                       std::chrono::milliseconds interval = 1h) {
    return memory_returner(
        io, threshold, interval,
        [this] {
          ++readings;
          return memory_returner::reading{resident, in_use};
        },
        [this] {
          ++returns;
          resident -= returnable;
          returnable = 0;
        });
  }
};

TEST(MemoryReturner, NothingIsReturnedWhileMemoryFreedStaysUnderTheThreshold) {
  asio::io_context io;
  fake_process p;
  auto r = p.make(io, 64 * MiB);
  EXPECT_EQ(r.check(), 0U) << "the first reading sets the floor";
  p.resident += 300 * MiB;  // a burst in use: nothing held
  p.in_use += 300 * MiB;
  EXPECT_EQ(r.check(), 0U);
  p.in_use -= 60 * MiB;  // freed, kept by the allocator: under the threshold
  p.returnable = 60 * MiB;
  EXPECT_EQ(r.check(), 0U);
  EXPECT_EQ(p.returns, 0);
}

TEST(MemoryReturner, ABurstFreedIsReturnedOnceAndWhatCannotGoIsNotRetried) {
  asio::io_context io;
  fake_process p;
  auto r = p.make(io, 64 * MiB);
  r.check();
  p.resident += 300 * MiB;
  p.in_use += 300 * MiB;
  r.check();
  p.in_use -= 300 * MiB;  // the burst ended: all of it freed, 280 MiB of it can go back
  p.returnable = 280 * MiB;
  EXPECT_EQ(r.check(), 280 * MiB);
  EXPECT_EQ(p.returns, 1);
  EXPECT_EQ(r.returned(), 280 * MiB);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(r.check(), 0U) << "the 20 MiB left held cannot go: not retried every interval";
  }
  EXPECT_EQ(p.returns, 1);

  p.resident += 100 * MiB;  // the next burst, then freed
  p.returnable = 100 * MiB;
  EXPECT_EQ(r.check(), 100 * MiB);
  EXPECT_EQ(p.returns, 2);
  EXPECT_EQ(r.returned(), 380 * MiB);
}

TEST(MemoryReturner, TheFloorFollowsWhatIsHeldDownwards) {
  asio::io_context io;
  fake_process p;
  auto r = p.make(io, 64 * MiB);
  p.resident = 200 * MiB;  // the first reading finds 190 MiB held (say, a start-up burst)
  r.check();
  p.resident = 30 * MiB;  // the allocator gave it back on its own
  r.check();
  p.resident += 70 * MiB;  // 70 MiB more held than the lowest floor: due
  p.returnable = 70 * MiB;
  EXPECT_EQ(r.check(), 70 * MiB);
}

TEST(MemoryReturner, AThresholdOfZeroNeverReadsNorReturns) {
  asio::io_context io;
  fake_process p;
  auto r = p.make(io, 0, 1ms);
  r.start();
  p.resident += 1000 * MiB;
  p.returnable = 1000 * MiB;
  EXPECT_EQ(r.check(), 0U);
  io.run_for(20ms);
  EXPECT_EQ(p.readings, 0);
  EXPECT_EQ(p.returns, 0);
}

TEST(MemoryReturner, StartedItChecksEveryIntervalUntilStopped) {
  asio::io_context io;
  fake_process p;
  auto r = p.make(io, 64 * MiB, 5ms);
  r.start();
  EXPECT_EQ(p.readings, 1) << "start() reads once: the floor";
  p.resident += 200 * MiB;
  p.returnable = 200 * MiB;
  while (p.returns == 0) {
    io.run_one();
  }
  EXPECT_EQ(r.returned(), 200 * MiB);
  r.stop();
  const int readings = p.readings;
  io.restart();
  io.run_for(30ms);
  EXPECT_EQ(p.readings, readings) << "no check after stop()";
}

TEST(MemoryReturner, TheRealReadingSeesTheProcess) {
  const auto m = memory_returner::real_reading();
  EXPECT_GT(m.resident, 1U * MiB) << "a test process has more than 1 MiB resident";
}

}  // namespace
}  // namespace gwx
