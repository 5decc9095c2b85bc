#pragma once

#include <algorithm>
#include <atomic>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/metrics/family.hpp"

namespace gwx::metrics {

class registry;

namespace detail {
// One child: a counter per bucket (not cumulative; the last one is +Inf) and the sum of the
// observations as the bits of a double, updated by compare-and-swap.
struct alignas(64) histogram_cell {
  explicit histogram_cell(const std::vector<double>& bounds)
      : bounds(bounds.data()),
        bound_count(bounds.size()),
        buckets(std::make_unique<std::atomic<std::uint64_t>[]>(bounds.size() + 1)) {}

  const double* bounds;  // the family's, immutable
  std::size_t bound_count;
  std::unique_ptr<std::atomic<std::uint64_t>[]> buckets;
  std::atomic<std::uint64_t> sum_bits{std::bit_cast<std::uint64_t>(0.0)};
};
}  // namespace detail

/// What one histogram child holds at one moment.
struct histogram_snapshot {
  /// Upper bounds, without the implicit +Inf.
  std::vector<double> bounds;
  /// Cumulative counts: cumulative[i] observations were <= bounds[i]; the last entry (one more
  /// than `bounds`) is the +Inf bucket and equals `count`.
  std::vector<std::uint64_t> cumulative;
  std::uint64_t count = 0;
  double sum = 0;
};

/// A handle to one child of a histogram family: counts observations into buckets by upper bound
/// (`le`, inclusive) and keeps their sum.
///
/// Thread-safety: observe() from any thread, no lock and no allocation: a binary search over the
/// bounds, one relaxed atomic add, and a compare-and-swap loop on the sum. A scrape running at
/// the same time may see an observation in its bucket before it is in the sum. Cheap to copy.
/// Default-constructed: detached, observations do nothing. Must not be used after its registry
/// is destroyed.
class histogram : public detail::handle_base<detail::histogram_cell> {
 public:
  histogram() = default;

  /// Records one observation. NaN is ignored (it would poison the sum forever).
  void observe(double value) const noexcept {
    if (cell_ == nullptr || std::isnan(value)) {
      return;
    }
    const double* end = cell_->bounds + cell_->bound_count;
    const auto index =
        static_cast<std::size_t>(std::lower_bound(cell_->bounds, end, value) - cell_->bounds);
    cell_->buckets[index].fetch_add(1, std::memory_order_relaxed);
    auto old_bits = cell_->sum_bits.load(std::memory_order_relaxed);
    while (!cell_->sum_bits.compare_exchange_weak(
        old_bits, std::bit_cast<std::uint64_t>(std::bit_cast<double>(old_bits) + value),
        std::memory_order_relaxed)) {
    }
  }

  /// Records a duration in seconds (the base unit of every `_seconds` histogram).
  template <typename Rep, typename Period>
  void observe(std::chrono::duration<Rep, Period> elapsed) const noexcept {
    observe(std::chrono::duration<double>(elapsed).count());
  }

  /// The current counts and sum (empty when detached).
  histogram_snapshot snapshot() const;

 private:
  friend class detail::cell_family<histogram, detail::histogram_cell>;
  explicit histogram(detail::histogram_cell* cell) : handle_base(cell) {}
};

/// A histogram family (TYPE histogram): `_bucket{le=…}` lines with cumulative counts, `_sum` and
/// `_count`. All children share the family's buckets; with() gives a child's handle.
/// Thread-safe.
class histogram_family final : public detail::cell_family<histogram, detail::histogram_cell> {
 public:
  /// The upper bounds, without the implicit +Inf.
  const std::vector<double>& bounds() const { return bounds_; }

 private:
  friend class registry;
  histogram_family(std::string name, std::string help, std::vector<std::string> label_names,
                   std::vector<double> bounds);

  std::unique_ptr<detail::histogram_cell> make_cell() const override {
    return std::make_unique<detail::histogram_cell>(bounds_);
  }
  void render_samples(std::string& out) const override;

  std::vector<double> bounds_;
  std::vector<std::string> le_values_;  // rendered once
};

/// Checks upper bounds for a histogram: finite, strictly increasing; a last +Inf is dropped (it
/// is always implied). Throws std::invalid_argument.
std::vector<double> checked_buckets(std::vector<double> bounds);

/// `count` bounds: start, start*factor, start*factor²… (start > 0, factor > 1).
std::vector<double> exponential_buckets(double start, double factor, std::size_t count);

/// `count` bounds: start, start+width, start+2*width… (width > 0).
std::vector<double> linear_buckets(double start, double width, std::size_t count);

/// Bounds in seconds from 50 µs to 10 s, fine below a millisecond where gwx's latency targets
/// lie: 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
/// 0.5, 1, 2.5, 5, 10.
std::vector<double> latency_buckets();

}  // namespace gwx::metrics
