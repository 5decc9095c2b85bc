#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/metrics/callback.hpp"
#include "common/metrics/counter.hpp"
#include "common/metrics/family.hpp"
#include "common/metrics/gauge.hpp"
#include "common/metrics/histogram.hpp"

namespace gwx::metrics {

/// The metric families of one process and their exposition in the Prometheus text format 0.0.4.
///
/// Families are registered at setup; a name, its labels and its help are checked then (invalid
/// input throws std::invalid_argument, a start-up error). Registering the same name again with
/// the same type, help, label names (and buckets) returns the existing family, so every instance
/// of a class can ask for its family; anything else under a taken name throws. gwx's conventions
/// are enforced: lowercase snake_case names and labels, counters end in `_total` and nothing else
/// does, `_bucket`/`_sum`/`_count` only come from histograms, no `le` label on a histogram, a
/// non-empty help text.
///
/// Thread-safety: every member from any thread. Registration and expose() take the registry's
/// lock; metric updates through handles never do. The registry must outlive every family
/// reference, handle and callback_registration taken from it.
class registry {
 public:
  registry() = default;
  registry(const registry&) = delete;
  registry& operator=(const registry&) = delete;

  /// A counter family; `name` must end in `_total`.
  counter_family& add_counter(const std::string& name, const std::string& help,
                              std::vector<std::string> label_names = {});

  /// A gauge family.
  gauge_family& add_gauge(const std::string& name, const std::string& help,
                          std::vector<std::string> label_names = {});

  /// A histogram family with these upper bounds (see checked_buckets()).
  histogram_family& add_histogram(const std::string& name, const std::string& help,
                                  std::vector<double> bounds,
                                  std::vector<std::string> label_names = {});

  /// A gauge family whose values come from callbacks at scrape time.
  callback_family& add_callback_gauge(const std::string& name, const std::string& help,
                                      std::vector<std::string> label_names = {});

  /// A counter family whose values come from callbacks at scrape time; `name` ends in `_total`.
  callback_family& add_callback_counter(const std::string& name, const std::string& help,
                                        std::vector<std::string> label_names = {});

  /// Every family in name order, each with HELP and TYPE lines and its children in label-value
  /// order: the body of a `GET /metrics` answer.
  std::string expose() const;

  /// Same, appended to `out`.
  void expose(std::string& out) const;

 private:
  // Checks a new family against the rules and the names taken; returns the existing family of
  // that name when it is the same one, nullptr when the name is free.
  family* check_new_locked(metric_type type, const std::string& name, const std::string& help,
                           const std::vector<std::string>& label_names,
                           const std::vector<double>* bounds) const;
  template <typename Family, typename Make>
  Family& add(metric_type type, const std::string& name, const std::string& help,
              const std::vector<std::string>& label_names, const std::vector<double>* bounds,
              Make make);

  mutable std::mutex mutex_;
  std::map<std::string, std::unique_ptr<family>> families_;
};

}  // namespace gwx::metrics
