#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/metrics/family.hpp"

namespace gwx::metrics {

class registry;

namespace detail {
// One child's value, on its own cache line (see counter_cell).
struct alignas(64) gauge_cell {
  std::atomic<std::int64_t> value{0};
};
}  // namespace detail

/// A handle to one child of a gauge family: an integer that goes up and down (open connections,
/// queued bytes). For a value the owning code already knows, prefer a callback gauge.
///
/// Thread-safety: every member from any thread; an update is one relaxed atomic operation, no
/// lock and no allocation. Cheap to copy. Default-constructed: detached, updates do nothing. Must
/// not be used after its registry is destroyed.
class gauge : public detail::handle_base<detail::gauge_cell> {
 public:
  gauge() = default;

  /// Sets the value.
  void set(std::int64_t value) const noexcept {
    if (cell_ != nullptr) {
      cell_->value.store(value, std::memory_order_relaxed);
    }
  }

  /// Adds `n` (may be negative).
  void inc(std::int64_t n = 1) const noexcept {
    if (cell_ != nullptr) {
      cell_->value.fetch_add(n, std::memory_order_relaxed);
    }
  }

  /// Subtracts `n`.
  void dec(std::int64_t n = 1) const noexcept { inc(-n); }

  /// The current value (0 when detached).
  std::int64_t value() const noexcept {
    return cell_ == nullptr ? 0 : cell_->value.load(std::memory_order_relaxed);
  }

 private:
  friend class detail::cell_family<gauge, detail::gauge_cell>;
  explicit gauge(detail::gauge_cell* cell) : handle_base(cell) {}
};

/// A gauge family (TYPE gauge); with() gives a child's handle. Thread-safe.
class gauge_family final : public detail::cell_family<gauge, detail::gauge_cell> {
 private:
  friend class registry;
  gauge_family(std::string name, std::string help, std::vector<std::string> label_names)
      : cell_family(metric_type::gauge, std::move(name), std::move(help), std::move(label_names)) {}

  std::unique_ptr<detail::gauge_cell> make_cell() const override {
    return std::make_unique<detail::gauge_cell>();
  }
  void render_samples(std::string& out) const override;
};

}  // namespace gwx::metrics
