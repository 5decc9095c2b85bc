#pragma once

#include <prometheus/gauge.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "common/metrics/handle.hpp"

namespace gwx::metrics {

class registry;

/// A handle to one child of a gauge family: an integer that goes up and down (open connections,
/// queued bytes). For a value the owning code already knows, prefer a callback gauge.
///
/// Thread-safety: every member from any thread; an update is one atomic operation on the
/// prometheus::Gauge, no lock, no lookup, no allocation. Cheap to copy. Default-constructed:
/// detached, updates do nothing. Must not be used after its registry is destroyed.
class gauge : public detail::handle_base<prometheus::Gauge> {
 public:
  gauge() = default;

  /// Sets the value.
  void set(std::int64_t value) const noexcept {
    if (metric_ != nullptr) {
      metric_->Set(static_cast<double>(value));
    }
  }

  /// Adds `n` (may be negative).
  void inc(std::int64_t n = 1) const noexcept {
    if (metric_ != nullptr) {
      metric_->Increment(static_cast<double>(n));
    }
  }

  /// Subtracts `n`.
  void dec(std::int64_t n = 1) const noexcept { inc(-n); }

  /// The current value (0 when detached).
  std::int64_t value() const noexcept {
    return metric_ == nullptr ? 0 : std::llround(metric_->Value());
  }

 private:
  friend class detail::metric_family<gauge, prometheus::Gauge>;
  explicit gauge(prometheus::Gauge* metric) : handle_base(metric) {}
};

/// A gauge family (TYPE gauge); with() gives a child's handle. Thread-safe.
class gauge_family final : public detail::metric_family<gauge, prometheus::Gauge> {
 private:
  friend class registry;
  gauge_family(std::string name, std::string help, std::vector<std::string> label_names,
               prometheus::Family<prometheus::Gauge>& children)
      : metric_family(metric_type::gauge, std::move(name), std::move(help), std::move(label_names),
                      children) {}

  prometheus::Gauge& add_child(const prometheus::Labels& labels) override {
    return children_.Add(labels);
  }
};

}  // namespace gwx::metrics
