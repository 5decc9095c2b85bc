#include "common/metrics/histogram.hpp"

#include <cmath>
#include <stdexcept>

#include "common/metrics/text_format.hpp"

namespace gwx::metrics {

histogram_snapshot histogram::snapshot() const {
  histogram_snapshot snap;
  if (cell_ == nullptr) {
    return snap;
  }
  snap.bounds.assign(cell_->bounds, cell_->bounds + cell_->bound_count);
  snap.cumulative.reserve(cell_->bound_count + 1);
  for (std::size_t i = 0; i <= cell_->bound_count; ++i) {
    snap.count += cell_->buckets[i].load(std::memory_order_relaxed);
    snap.cumulative.push_back(snap.count);
  }
  snap.sum = std::bit_cast<double>(cell_->sum_bits.load(std::memory_order_relaxed));
  return snap;
}

histogram_family::histogram_family(std::string name, std::string help,
                                   std::vector<std::string> label_names, std::vector<double> bounds)
    : cell_family(metric_type::histogram, std::move(name), std::move(help), std::move(label_names)),
      bounds_(checked_buckets(std::move(bounds))) {
  for (const double bound : bounds_) {
    std::string le;
    append_double(le, bound);
    le_values_.push_back(std::move(le));
  }
  le_values_.emplace_back("+Inf");
}

void histogram_family::render_samples(std::string& out) const {
  const std::string bucket_name = name() + "_bucket";
  const std::string sum_name = name() + "_sum";
  const std::string count_name = name() + "_count";
  children_.visit([&](const std::string& pairs, const detail::histogram_cell& cell) {
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i < le_values_.size(); ++i) {
      cumulative += cell.buckets[i].load(std::memory_order_relaxed);
      out += bucket_name;
      out += '{';
      if (!pairs.empty()) {
        out += pairs;
        out += ',';
      }
      out += "le=\"";
      out += le_values_[i];
      out += "\"} ";
      append_uint(out, cumulative);
      out += '\n';
    }
    append_sample_prefix(out, sum_name, pairs);
    append_double(out, std::bit_cast<double>(cell.sum_bits.load(std::memory_order_relaxed)));
    out += '\n';
    append_sample_prefix(out, count_name, pairs);
    append_uint(out, cumulative);
    out += '\n';
  });
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
