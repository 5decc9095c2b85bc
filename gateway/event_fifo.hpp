#pragma once

#include <cstddef>
#include <utility>
#include <vector>

namespace gwx::gateway {

/// A FIFO that costs one empty vector (no allocation) while unused — unlike std::deque, which
/// allocates on construction — for the per-client event queues. Its storage goes as soon as it
/// is empty: a client whose events were all acknowledged holds none. The first storage of a few
/// items is kept for the next FIFO of the thread that needs one (up to k_spares of them), so a
/// client with one event at a time in flight costs no allocation per event. Not thread-safe.
template <typename T>
class event_fifo {
 public:
  bool empty() const { return head_ == items_.size(); }
  std::size_t size() const { return items_.size() - head_; }
  T& front() { return items_[head_]; }
  const T& front() const { return items_[head_]; }
  void push_back(T item) {
    if (items_.capacity() == 0) {
      auto& spares = spare_storage();
      if (spares.empty()) {
        items_.reserve(k_first_capacity);  // one allocation for a small burst
      } else {
        items_ = std::move(spares.back());
        spares.pop_back();
      }
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

  /// Empties the FIFO and gives its memory back (or to the thread's spares).
  void clear() {
    auto& spares = spare_storage();
    if (items_.capacity() == k_first_capacity && spares.size() < k_spares) {
      items_.clear();
      spares.push_back(std::move(items_));
    }
    items_ = std::vector<T>();
    head_ = 0;
  }

  static constexpr std::size_t k_spares = 64;

 private:
  static constexpr std::size_t k_first_capacity = 4;

  /// Emptied first storages, kept per thread (a gateway loop's clients are used on its thread).
  static std::vector<std::vector<T>>& spare_storage() {
    thread_local std::vector<std::vector<T>> spares;
    return spares;
  }

  std::vector<T> items_;
  std::size_t head_ = 0;
};

}  // namespace gwx::gateway
