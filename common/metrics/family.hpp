#pragma once

#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace gwx::metrics {

/// The TYPE of a metric family in the exposition.
enum class metric_type { counter, gauge, histogram };

/// "counter", "gauge" or "histogram".
std::string_view to_string(metric_type type);

/// A named metric with a help text, a type and a fixed list of label names; its children (one
/// per set of label values) hold the values. Families are created by a `registry`, which owns
/// them: a reference to a family stays valid as long as the registry lives.
///
/// Thread-safety: every member may be called from any thread.
class family {
 public:
  virtual ~family() = default;
  family(const family&) = delete;
  family& operator=(const family&) = delete;

  const std::string& name() const { return name_; }
  const std::string& help() const { return help_; }
  metric_type type() const { return type_; }
  const std::vector<std::string>& label_names() const { return label_names_; }

  /// Appends the HELP and TYPE lines and one line per sample (children ordered by their label
  /// values). Called by the registry at scrape time.
  void render(std::string& out) const;

 protected:
  family(metric_type type, std::string name, std::string help,
         std::vector<std::string> label_names);

  /// Checks that `values` has one value per label name; throws std::invalid_argument otherwise.
  std::vector<std::string> make_key(std::vector<std::string> values) const;

  /// `a="x",b="y"` (escaped, no braces) for the values of `key`; empty without labels.
  std::string render_label_pairs(const std::vector<std::string>& key) const;

  /// Appends the sample lines of every child.
  virtual void render_samples(std::string& out) const = 0;

 private:
  metric_type type_;
  std::string name_;
  std::string help_;
  std::vector<std::string> label_names_;
};

/// Turns the two ways of passing label values into the key type.
inline std::vector<std::string> label_values(std::initializer_list<std::string_view> values) {
  return {values.begin(), values.end()};
}

/// Appends `name{pairs}` (or `name` alone when `pairs` is empty) and a space.
void append_sample_prefix(std::string& out, std::string_view name, std::string_view pairs);

namespace detail {

/// The children of one family: label values → (rendered label pairs, cell). Cells are heap
/// objects that never move and are never freed before the family, so handles may keep raw
/// pointers to them. Locked only on lookup (setup) and at scrape time, never by an update.
template <typename Cell>
class child_map {
 public:
  struct child {
    std::string label_pairs;
    std::unique_ptr<Cell> cell;
  };

  /// Returns the cell for `key`, creating it with `make()` and `label_pairs()` if absent.
  template <typename MakeCell, typename MakePairs>
  Cell& find_or_add(std::vector<std::string> key, MakeCell make, MakePairs pairs) {
    std::lock_guard lock(mutex_);
    auto it = children_.find(key);
    if (it == children_.end()) {
      it = children_.emplace(std::move(key), child{pairs(), make()}).first;
    }
    return *it->second.cell;
  }

  /// Adds a cell for `key`; false (and nothing added) when one exists already.
  bool insert(std::vector<std::string> key, std::string label_pairs, std::unique_ptr<Cell> cell) {
    std::lock_guard lock(mutex_);
    return children_.emplace(std::move(key), child{std::move(label_pairs), std::move(cell)}).second;
  }

  /// Removes the cell for `key`; waits for a scrape in progress to finish with it.
  void erase(const std::vector<std::string>& key) {
    std::lock_guard lock(mutex_);
    children_.erase(key);
  }

  /// Calls `visit(label_pairs, cell)` for each child in label-value order, under the lock.
  template <typename Visit>
  void visit(Visit visit) const {
    std::lock_guard lock(mutex_);
    for (const auto& [key, entry] : children_) {
      visit(entry.label_pairs, *entry.cell);
    }
  }

 private:
  mutable std::mutex mutex_;
  std::map<std::vector<std::string>, child> children_;
};

/// What every handle shares: a pointer to its child's cell, null when detached.
template <typename Cell>
class handle_base {
 public:
  /// Whether the handle belongs to a family (a detached one ignores updates).
  bool attached() const noexcept { return cell_ != nullptr; }

 protected:
  handle_base() = default;
  explicit handle_base(Cell* cell) : cell_(cell) {}

  Cell* cell_ = nullptr;
};

/// A family whose children are cells updated through handles: counters, gauges, histograms.
template <typename Handle, typename Cell>
class cell_family : public family {
 public:
  /// The child for these label values (one per label name, in order), created at first use.
  /// Takes a lock and may allocate: call it at setup and keep the handle. Throws
  /// std::invalid_argument on a wrong number of values.
  Handle with(std::initializer_list<std::string_view> values = {}) {
    return with(label_values(values));
  }

  /// Same, with the values in a vector.
  Handle with(std::vector<std::string> values) {
    auto key = make_key(std::move(values));
    auto& cell = children_.find_or_add(
        key, [this] { return make_cell(); }, [&] { return render_label_pairs(key); });
    return Handle(&cell);
  }

 protected:
  using family::family;

  /// A new, zeroed cell.
  virtual std::unique_ptr<Cell> make_cell() const = 0;

  child_map<Cell> children_;
};

}  // namespace detail
}  // namespace gwx::metrics
