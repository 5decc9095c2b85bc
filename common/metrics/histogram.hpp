#pragma once

#include <prometheus/histogram.h>

#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "common/metrics/handle.hpp"

namespace gwx::metrics {

class registry;

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
/// Thread-safety: observe() from any thread, no lookup and no allocation: a binary search over
/// the bounds, then prometheus::Histogram takes its child's own short lock to add to a bucket and
/// the sum (so a scrape sees both or neither). Cheap to copy. Default-constructed: detached,
/// observations do nothing. Must not be used after its registry is destroyed.
class histogram : public detail::handle_base<prometheus::Histogram> {
 public:
  histogram() = default;

  /// Records one observation. NaN is ignored (it would poison the sum forever).
  void observe(double value) const noexcept {
    if (metric_ != nullptr && !std::isnan(value)) {
      metric_->Observe(value);
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
  friend class detail::metric_family<histogram, prometheus::Histogram>;
  explicit histogram(prometheus::Histogram* metric) : handle_base(metric) {}
};

/// A histogram family (TYPE histogram): `_bucket{le=…}` lines with cumulative counts, `_sum` and
/// `_count`. All children share the family's buckets; with() gives a child's handle.
/// Thread-safe.
class histogram_family final : public detail::metric_family<histogram, prometheus::Histogram> {
 public:
  /// The upper bounds, without the implicit +Inf.
  const std::vector<double>& bounds() const { return bounds_; }

 private:
  friend class registry;
  histogram_family(std::string name, std::string help, std::vector<std::string> label_names,
                   std::vector<double> bounds, prometheus::Family<prometheus::Histogram>& children)
      : metric_family(metric_type::histogram, std::move(name), std::move(help),
                      std::move(label_names), children),
        bounds_(std::move(bounds)) {}

  prometheus::Histogram& add_child(const prometheus::Labels& labels) override {
    return children_.Add(labels, bounds_);
  }

  std::vector<double> bounds_;
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
