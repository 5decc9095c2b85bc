#pragma once

#include <cstdint>
#include <vector>

namespace gwx::bench {

/// Log-linear histogram of durations in nanoseconds: exact below 128 ns, then 64 buckets per
/// power of two (under 1.6 % error), up to hours. Constant-time record, no allocation after
/// construction. Thread-compatible: one per thread, merged at the end.
class latency_histogram {
 public:
  latency_histogram();

  void record(std::uint64_t ns) {
    ++counts_[index_of(ns)];
    ++total_;
  }
  /// Adds another histogram's counts.
  void merge(const latency_histogram& other);
  /// Forgets everything recorded.
  void clear();

  std::uint64_t count() const { return total_; }
  /// The value at quantile q (0..1), in nanoseconds; 0 when empty.
  std::uint64_t quantile(double q) const;

 private:
  static std::size_t index_of(std::uint64_t ns);
  static std::uint64_t value_of(std::size_t index);

  std::vector<std::uint64_t> counts_;
  std::uint64_t total_ = 0;
};

}  // namespace gwx::bench
