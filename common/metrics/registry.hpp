#pragma once

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>
#include <prometheus/registry.h>

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

class registry;

/// Keeps a collectable added by registry::add_collectable() registered; removes it (and frees its
/// names) when destroyed or reset. Move-only, must not outlive the registry.
class collectable_registration {
 public:
  collectable_registration() = default;
  ~collectable_registration() { reset(); }
  collectable_registration(collectable_registration&& other) noexcept;
  collectable_registration& operator=(collectable_registration&& other) noexcept;
  collectable_registration(const collectable_registration&) = delete;
  collectable_registration& operator=(const collectable_registration&) = delete;

  /// Removes the collectable now. When it returns, no scrape is collecting it.
  void reset();

 private:
  friend class registry;
  collectable_registration(registry* owner, const prometheus::Collectable* collectable)
      : owner_(owner), collectable_(collectable) {}

  registry* owner_ = nullptr;
  const prometheus::Collectable* collectable_ = nullptr;
};

/// The metric families of one process, kept by prometheus-cpp, and their exposition in the
/// Prometheus text format 0.0.4 (prometheus::TextSerializer).
///
/// Counters, gauges and histograms live in a prometheus::Registry; callback families and added
/// collectables (the process metrics) are prometheus::Collectable objects collected alongside
/// it. A name, its labels and its help are checked at registration (invalid input throws
/// std::invalid_argument, a start-up error). Registering the same name again with the same type,
/// help, label names (and buckets) returns the existing family, so every instance of a class can
/// ask for its family; anything else under a taken name throws. gwx's conventions are enforced:
/// lowercase snake_case names and labels, counters end in `_total` and nothing else does,
/// `_bucket`/`_sum`/`_count` only come from histograms, no `le` label on a histogram, a
/// non-empty one-line help text.
///
/// Thread-safety: every member from any thread. Registration and scrapes take the registry's
/// lock; metric updates through handles never do. The registry must outlive every family
/// reference, handle and registration taken from it.
class registry {
 public:
  registry();
  ~registry();
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

  /// Collects `collectable` at every scrape until the registration ends. It must produce only
  /// the families named in `family_names`, which are reserved for it (each a valid name not
  /// taken yet; throws std::invalid_argument otherwise). Collect() runs under the registry's
  /// lock, on the scraping thread.
  [[nodiscard]] collectable_registration add_collectable(
      std::shared_ptr<const prometheus::Collectable> collectable,
      const std::vector<std::string>& family_names);

  /// Every family that has samples, in name order, each child in label order.
  std::vector<prometheus::MetricFamily> collect() const;

  /// collect() in the text format: the body of a `GET /metrics` answer.
  std::string expose() const;

  /// Same, appended to `out`.
  void expose(std::string& out) const;

 private:
  friend class collectable_registration;
  struct external {
    std::shared_ptr<const prometheus::Collectable> collectable;
    std::vector<std::string> names;
  };

  // Checks a new family against the rules and the names taken; returns the existing family of
  // that name when it is the same one, nullptr when the name is free.
  family* check_new_locked(metric_type type, const std::string& name, const std::string& help,
                           const std::vector<std::string>& label_names,
                           const std::vector<double>* bounds) const;
  template <typename Family, typename Make>
  Family& add(metric_type type, const std::string& name, const std::string& help,
              const std::vector<std::string>& label_names, const std::vector<double>* bounds,
              Make make);
  void remove_collectable(const prometheus::Collectable* collectable);

  mutable std::mutex mutex_;
  prometheus::Registry families_registry_;
  std::map<std::string, std::unique_ptr<family>> families_;
  std::vector<const callback_family*> callback_families_;
  std::vector<external> externals_;
};

}  // namespace gwx::metrics
