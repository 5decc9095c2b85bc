#pragma once

#include <prometheus/family.h>

#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "common/metrics/family.hpp"

// What counters, gauges and histograms share: a handle is a pointer to one prometheus-cpp metric
// (a child of a family, resolved once at setup), a family hands them out by label values.
namespace gwx::metrics::detail {

/// A pointer to one child metric, null when detached.
template <typename Metric>
class handle_base {
 public:
  /// Whether the handle belongs to a family (a detached one ignores updates).
  bool attached() const noexcept { return metric_ != nullptr; }

 protected:
  handle_base() = default;
  explicit handle_base(Metric* metric) : metric_(metric) {}

  Metric* metric_ = nullptr;
};

/// A family whose children are prometheus-cpp metrics updated through handles. The children
/// live in a prometheus::Family owned by the registry's prometheus::Registry; they are never
/// removed, so handles may keep raw pointers to them.
template <typename Handle, typename Metric>
class metric_family : public family {
 public:
  /// The child for these label values (one per label name, in order), created at first use.
  /// Takes a lock and allocates: call it at setup and keep the handle. Throws
  /// std::invalid_argument on a wrong number of values.
  Handle with(std::initializer_list<std::string_view> values = {}) {
    return with(label_values(values));
  }

  /// Same, with the values in a vector.
  Handle with(const std::vector<std::string>& values) {
    return Handle(&add_child(labels_of(values)));
  }

 protected:
  metric_family(metric_type type, std::string name, std::string help,
                std::vector<std::string> label_names, prometheus::Family<Metric>& children)
      : family(type, std::move(name), std::move(help), std::move(label_names)),
        children_(children) {}

  /// Finds or creates the child with these labels.
  virtual Metric& add_child(const prometheus::Labels& labels) = 0;

  prometheus::Family<Metric>& children_;
};

}  // namespace gwx::metrics::detail
