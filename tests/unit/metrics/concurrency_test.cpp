// Several threads update the same children while another scrapes: the totals come out exact.
// Run under the TSan preset too (GWX_SANITIZE=thread).
#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/metrics/registry.hpp"

namespace gwx::metrics {
namespace {

constexpr int k_threads = 4;
constexpr int k_updates = 50000;
constexpr std::uint64_t k_total = std::uint64_t{k_threads} * k_updates;  // updates per kind

TEST(MetricsConcurrency, ExactTotalsUnderContention) {
  registry reg;
  auto& counters = reg.add_counter("gwx_test_msgs_total", "Messages.", {"dir"});
  auto& gauges = reg.add_gauge("gwx_test_open", "Open.");
  auto& histograms = reg.add_histogram("gwx_test_rtt_seconds", "RTT.", {0.5, 1.5});
  (void)histograms.with();  // a family shows once it has a child

  std::atomic<bool> scraping{false};
  std::atomic<bool> done{false};
  std::size_t scrapes = 0;
  std::thread scraper([&] {
    do {
      const auto text = reg.expose();
      EXPECT_NE(text.find("# TYPE gwx_test_rtt_seconds histogram"), std::string::npos);
      ++scrapes;
      scraping = true;
    } while (!done.load());
  });

  std::vector<std::thread> threads;
  threads.reserve(k_threads);
  for (int t = 0; t < k_threads; ++t) {
    threads.emplace_back([&, t] {
      // Resolved once per thread, as a connection would at setup; the same labels from several
      // threads must land on the same child.
      const auto in = counters.with({"in"});
      const auto out = counters.with({t % 2 == 0 ? "out" : "in"});
      const auto open = gauges.with();
      const auto rtt = histograms.with();
      // Updates start once scrapes run, so that the two overlap.
      while (!scraping.load()) {
        std::this_thread::yield();
      }
      for (int i = 0; i < k_updates; ++i) {
        in.inc();
        out.inc(2);
        open.inc();
        rtt.observe(i % 2 == 0 ? 1.0 : 2.0);
        open.dec();
      }
    });
  }
  for (auto& thread : threads) {
    thread.join();
  }
  done = true;
  scraper.join();

  // Every thread adds 1 to "in"; of the 4 threads, 0 and 2 add 2 to "out", 1 and 3 add 2 to
  // "in": 2 threads x 2 x k_updates = k_total each.
  static_assert(k_threads == 4);
  EXPECT_EQ(counters.with({"in"}).value(), k_total + k_total);
  EXPECT_EQ(counters.with({"out"}).value(), k_total);
  EXPECT_EQ(gauges.with().value(), 0);
  const auto snap = histograms.with().snapshot();
  EXPECT_EQ(snap.count, k_total);
  EXPECT_EQ(snap.cumulative[0], 0U);
  EXPECT_EQ(snap.cumulative[1], k_total / 2);
  // Integers and halves are exact in a double: the CAS-updated sum loses nothing.
  EXPECT_EQ(snap.sum, 1.5 * static_cast<double>(k_total));
  EXPECT_GT(scrapes, 0U);
}

TEST(MetricsConcurrency, RegistrationAndCallbacksWhileScraping) {
  registry reg;
  std::atomic<bool> done{false};
  std::thread scraper([&] {
    while (!done.load()) {
      (void)reg.expose();
    }
  });
  std::vector<std::thread> threads;
  threads.reserve(k_threads);
  for (int t = 0; t < k_threads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        auto& family = reg.add_callback_gauge("gwx_test_depth", "Depth.", {"owner"});
        std::atomic<int> value{i};
        auto registration =
            family.add({"t" + std::to_string(t)}, [&value] { return double(value.load()); });
        reg.add_counter("gwx_test_made_total", "Made.", {"t"}).with({std::to_string(t)}).inc();
        // registration ends here, before `value` dies: no scrape may call it afterwards.
      }
    });
  }
  for (auto& thread : threads) {
    thread.join();
  }
  done = true;
  scraper.join();
  const auto text = reg.expose();
  EXPECT_EQ(text.find("gwx_test_depth{"), std::string::npos);
  for (int t = 0; t < k_threads; ++t) {
    EXPECT_NE(text.find("gwx_test_made_total{t=\"" + std::to_string(t) + "\"} 200\n"),
              std::string::npos);
  }
}

}  // namespace
}  // namespace gwx::metrics
