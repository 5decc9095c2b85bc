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
// One child's value, on its own cache line so children updated by different threads do not
// bounce a shared line.
struct alignas(64) counter_cell {
  std::atomic<std::uint64_t> value{0};
};
}  // namespace detail

/// A handle to one child of a counter family: a value that only goes up.
///
/// Thread-safety: inc() and value() from any thread; an update is one relaxed atomic add, no lock
/// and no allocation. Cheap to copy (one pointer). A default-constructed handle is detached: its
/// updates do nothing, so code can hold one whether or not metrics are wired. A handle must not
/// be used after its registry is destroyed.
class counter : public detail::handle_base<detail::counter_cell> {
 public:
  counter() = default;

  /// Adds `n`.
  void inc(std::uint64_t n = 1) const noexcept {
    if (cell_ != nullptr) {
      cell_->value.fetch_add(n, std::memory_order_relaxed);
    }
  }

  /// The current value (0 when detached).
  std::uint64_t value() const noexcept {
    return cell_ == nullptr ? 0 : cell_->value.load(std::memory_order_relaxed);
  }

 private:
  friend class detail::cell_family<counter, detail::counter_cell>;
  explicit counter(detail::counter_cell* cell) : handle_base(cell) {}
};

/// A counter family (TYPE counter, name ending in `_total`); with() gives a child's handle.
/// Thread-safe.
class counter_family final : public detail::cell_family<counter, detail::counter_cell> {
 private:
  friend class registry;
  counter_family(std::string name, std::string help, std::vector<std::string> label_names)
      : cell_family(metric_type::counter, std::move(name), std::move(help),
                    std::move(label_names)) {}

  std::unique_ptr<detail::counter_cell> make_cell() const override {
    return std::make_unique<detail::counter_cell>();
  }
  void render_samples(std::string& out) const override;
};

}  // namespace gwx::metrics
