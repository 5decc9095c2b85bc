#include "tools/bench/latency_histogram.hpp"

#include <algorithm>
#include <bit>
#include <cmath>

namespace gwx::bench {
namespace {

constexpr unsigned k_sub_bits = 6;                    // 64 buckets per power of two
constexpr std::uint64_t k_linear = 2U << k_sub_bits;  // exact below this
constexpr std::size_t k_buckets = (64 - k_sub_bits) << k_sub_bits;

}  // namespace

latency_histogram::latency_histogram() : counts_(k_buckets, 0) {}

std::size_t latency_histogram::index_of(std::uint64_t ns) {
  if (ns < k_linear) {
    return static_cast<std::size_t>(ns);
  }
  const unsigned shift = static_cast<unsigned>(std::bit_width(ns)) - 1 - k_sub_bits;
  // ns >> shift lies in [64, 128): bucket (shift + 1) * 64 + offset.
  return std::min<std::size_t>(k_buckets - 1, (static_cast<std::size_t>(shift) << k_sub_bits) +
                                                  static_cast<std::size_t>(ns >> shift));
}

std::uint64_t latency_histogram::value_of(std::size_t index) {
  if (index < k_linear) {
    return index;
  }
  const std::size_t shift = (index >> k_sub_bits) - 1;
  const std::uint64_t low = static_cast<std::uint64_t>(index - (shift << k_sub_bits)) << shift;
  return low + ((std::uint64_t{1} << shift) >> 1);  // middle of the bucket
}

void latency_histogram::merge(const latency_histogram& other) {
  for (std::size_t i = 0; i < counts_.size(); ++i) {
    counts_[i] += other.counts_[i];
  }
  total_ += other.total_;
}

void latency_histogram::clear() {
  std::fill(counts_.begin(), counts_.end(), 0);
  total_ = 0;
}

std::uint64_t latency_histogram::quantile(double q) const {
  if (total_ == 0) {
    return 0;
  }
  const auto rank =
      static_cast<std::uint64_t>(std::ceil(std::clamp(q, 0.0, 1.0) * static_cast<double>(total_)));
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < counts_.size(); ++i) {
    seen += counts_[i];
    if (seen >= std::max<std::uint64_t>(rank, 1)) {
      return value_of(i);
    }
  }
  return value_of(counts_.size() - 1);
}

}  // namespace gwx::bench
