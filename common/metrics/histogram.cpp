#include "common/metrics/histogram.hpp"

#include <cmath>
#include <stdexcept>

namespace gwx::metrics {

histogram_snapshot histogram::snapshot() const {
  histogram_snapshot snap;
  if (metric_ == nullptr) {
    return snap;
  }
  const auto collected = metric_->Collect().histogram;
  for (const auto& bucket : collected.bucket) {
    if (!std::isinf(bucket.upper_bound)) {
      snap.bounds.push_back(bucket.upper_bound);
    }
    snap.cumulative.push_back(bucket.cumulative_count);
  }
  if (snap.cumulative.size() == snap.bounds.size()) {  // no +Inf bucket in the collection
    snap.cumulative.push_back(collected.sample_count);
  }
  snap.count = collected.sample_count;
  snap.sum = collected.sample_sum;
  return snap;
}

std::vector<double> checked_buckets(std::vector<double> bounds) {
  if (!bounds.empty() && std::isinf(bounds.back()) && bounds.back() > 0) {
    bounds.pop_back();
  }
  for (std::size_t i = 0; i < bounds.size(); ++i) {
    if (!std::isfinite(bounds[i])) {
      throw std::invalid_argument("histogram bucket bounds must be finite");
    }
    if (i > 0 && !(bounds[i - 1] < bounds[i])) {
      throw std::invalid_argument("histogram bucket bounds must be strictly increasing");
    }
  }
  return bounds;
}

std::vector<double> exponential_buckets(double start, double factor, std::size_t count) {
  if (!(start > 0) || !(factor > 1)) {
    throw std::invalid_argument("exponential_buckets needs start > 0 and factor > 1");
  }
  std::vector<double> bounds;
  bounds.reserve(count);
  double bound = start;
  for (std::size_t i = 0; i < count; ++i) {
    bounds.push_back(bound);
    bound *= factor;
  }
  return bounds;
}

std::vector<double> linear_buckets(double start, double width, std::size_t count) {
  if (!(width > 0)) {
    throw std::invalid_argument("linear_buckets needs width > 0");
  }
  std::vector<double> bounds;
  bounds.reserve(count);
  for (std::size_t i = 0; i < count; ++i) {
    bounds.push_back(start + width * static_cast<double>(i));
  }
  return bounds;
}

std::vector<double> latency_buckets() {
  return {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
          0.05,    0.1,    0.25,    0.5,    1,     2.5,    5,     10};
}

}  // namespace gwx::metrics
