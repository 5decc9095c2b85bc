#pragma once

#include <cstddef>
#include <utility>
#include <vector>

namespace gwx::gateway {

/// A FIFO that costs one empty vector (no allocation) while unused — unlike std::deque, which
/// allocates on construction — for the per-client event queues. Its storage goes as soon as it
/// is empty: a client whose events were all acknowledged holds none. Not thread-safe.
template <typename T>
class event_fifo {
 public:
  bool empty() const { return head_ == items_.size(); }
  std::size_t size() const { return items_.size() - head_; }
  T& front() { return items_[head_]; }
  const T& front() const { return items_[head_]; }
  void push_back(T item) {
    if (items_.capacity() == 0) {
      items_.reserve(k_first_capacity);  // one allocation for a small burst
    }
    items_.push_back(std::move(item));
  }

  /// Removes and returns the first item.
  T pop_front() {
    T out = std::move(items_[head_++]);
    if (head_ == items_.size()) {
      clear();
    } else if (head_ >= 32 && head_ * 2 >= items_.size()) {
      items_.erase(items_.begin(), items_.begin() + static_cast<std::ptrdiff_t>(head_));
      head_ = 0;
    }
    return out;
  }

  /// Removes the item equal to `pred` nearest the front; false when none matches.
  template <typename Pred>
  bool erase_first(Pred pred) {
    for (std::size_t i = head_; i < items_.size(); ++i) {
      if (pred(items_[i])) {
        if (i == head_) {
          pop_front();
        } else {
          items_.erase(items_.begin() + static_cast<std::ptrdiff_t>(i));
        }
        return true;
      }
    }
    return false;
  }

  /// Moves every item out, in order, leaving the FIFO empty.
  std::vector<T> take_all() {
    std::vector<T> out;
    out.reserve(size());
    for (std::size_t i = head_; i < items_.size(); ++i) {
      out.push_back(std::move(items_[i]));
    }
    clear();
    return out;
  }

  /// Empties the FIFO and gives its memory back.
  void clear() {
    items_ = std::vector<T>();
    head_ = 0;
  }

 private:
  static constexpr std::size_t k_first_capacity = 4;

  std::vector<T> items_;
  std::size_t head_ = 0;
};

}  // namespace gwx::gateway
