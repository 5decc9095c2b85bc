#pragma once

#include <prometheus/counter.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/metrics/handle.hpp"

namespace gwx::metrics {

class registry;
class counter_family;

/// A handle to one child of a counter family: a value that only goes up.
///
/// Thread-safety: inc() and value() from any thread; an update is one atomic compare-and-swap on
/// the prometheus::Counter, no lock, no lookup, no allocation. Cheap to copy (one pointer). A
/// default-constructed handle is detached: its updates do nothing, so code can hold one whether
/// or not metrics are wired. A handle must not be used after its registry is destroyed.
class counter : public detail::handle_base<prometheus::Counter> {
 public:
  counter() = default;

  /// Adds `n`.
  void inc(std::uint64_t n = 1) const noexcept {
    if (metric_ != nullptr) {
      metric_->Increment(static_cast<double>(n));
    }
  }

  /// The current value (0 when detached).
  std::uint64_t value() const noexcept {
    return metric_ == nullptr ? 0 : static_cast<std::uint64_t>(metric_->Value());
  }

 private:
  friend class detail::metric_family<counter, prometheus::Counter>;
  explicit counter(prometheus::Counter* metric) : handle_base(metric) {}
};

/// A counter family (TYPE counter, name ending in `_total`); with() gives a child's handle.
/// Thread-safe.
class counter_family final : public detail::metric_family<counter, prometheus::Counter> {
 private:
  friend class registry;
  counter_family(std::string name, std::string help, std::vector<std::string> label_names,
                 prometheus::Family<prometheus::Counter>& children)
      : metric_family(metric_type::counter, std::move(name), std::move(help),
                      std::move(label_names), children) {}

  prometheus::Counter& add_child(const prometheus::Labels& labels) override {
    return children_.Add(labels);
  }
};

}  // namespace gwx::metrics
