#pragma once

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include <functional>
#include <initializer_list>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "common/metrics/family.hpp"

namespace gwx::metrics {

class callback_family;

/// Keeps one callback of a callback family registered; unregisters it when destroyed or reset.
/// Move-only. Must not outlive the registry. Not thread-safe itself (one owner); its destruction
/// may run concurrently with scrapes on other threads.
class callback_registration {
 public:
  callback_registration() = default;
  ~callback_registration() { reset(); }
  callback_registration(callback_registration&& other) noexcept;
  callback_registration& operator=(callback_registration&& other) noexcept;
  callback_registration(const callback_registration&) = delete;
  callback_registration& operator=(const callback_registration&) = delete;

  /// Unregisters now. When it returns, the callback is not running and will not run again.
  void reset();

  /// Whether a callback is registered through this object.
  bool active() const { return family_ != nullptr; }

 private:
  friend class callback_family;
  callback_registration(callback_family* family, std::vector<std::string> key)
      : family_(family), key_(std::move(key)) {}

  callback_family* family_ = nullptr;
  std::vector<std::string> key_;
};

/// A counter or gauge family whose values are read at scrape time by calling a function per
/// child: for figures the owning code already keeps (queue depths, open connections, live
/// leases), so the hot path does nothing at all for them. A prometheus::Collectable: the registry
/// collects it with its prometheus-cpp families at every scrape.
///
/// Thread-safety: add() from any thread. The callbacks run on the scraping thread (the exposer's)
/// while the family's lock is held, so they must be thread-safe, must be quick, must not touch
/// metric registration, and no code may hold a lock a callback takes while it registers or
/// unregisters a callback. A callback that throws leaves its sample out of that scrape.
class callback_family final : public family, public prometheus::Collectable {
 public:
  using read_fn = std::function<double()>;

  /// Registers `read` for these label values. Takes a lock and allocates: call it at setup.
  /// Throws std::invalid_argument on a wrong count or when a callback is already registered for
  /// the same values.
  [[nodiscard]] callback_registration add(std::initializer_list<std::string_view> values,
                                          read_fn read) {
    return add(label_values(values), std::move(read));
  }
  /// Same, with the values in a vector.
  [[nodiscard]] callback_registration add(std::vector<std::string> values, read_fn read);

  /// Calls every callback: one family with a sample per callback that returned (none when no
  /// callback is registered). Runs on the scraping thread.
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  friend class registry;
  friend class callback_registration;
  callback_family(metric_type type, std::string name, std::string help,
                  std::vector<std::string> label_names)
      : family(type, std::move(name), std::move(help), std::move(label_names)) {}

  void remove(const std::vector<std::string>& values);

  // Label values -> reader. Locked by add, remove and Collect (which calls the readers under
  // it, so that remove() returning means the reader is not running).
  mutable std::mutex mutex_;
  std::map<std::vector<std::string>, read_fn> children_;
};

}  // namespace gwx::metrics
