#include "common/metrics/callback.hpp"

#include <stdexcept>
#include <utility>

namespace gwx::metrics {

callback_registration::callback_registration(callback_registration&& other) noexcept
    : family_(std::exchange(other.family_, nullptr)), key_(std::move(other.key_)) {}

callback_registration& callback_registration::operator=(callback_registration&& other) noexcept {
  if (this != &other) {
    reset();
    family_ = std::exchange(other.family_, nullptr);
    key_ = std::move(other.key_);
  }
  return *this;
}

void callback_registration::reset() {
  if (family_ != nullptr) {
    family_->remove(key_);
    family_ = nullptr;
    key_.clear();
  }
}

callback_registration callback_family::add(std::vector<std::string> values, read_fn read) {
  if (!read) {
    throw std::invalid_argument("metric " + name() + ": empty callback");
  }
  (void)labels_of(values);  // checks the count
  std::lock_guard lock(mutex_);
  if (!children_.emplace(values, std::move(read)).second) {
    throw std::invalid_argument("metric " + name() + ": a callback for the same label values " +
                                "is already registered");
  }
  return {this, std::move(values)};
}

void callback_family::remove(const std::vector<std::string>& values) {
  std::lock_guard lock(mutex_);
  children_.erase(values);
}

std::vector<prometheus::MetricFamily> callback_family::Collect() const {
  prometheus::MetricFamily out;
  out.name = name();
  out.help = help();
  out.type = type() == metric_type::counter ? prometheus::MetricType::Counter
                                            : prometheus::MetricType::Gauge;
  std::lock_guard lock(mutex_);
  for (const auto& [values, read] : children_) {
    double value = 0;
    try {
      value = read();
    } catch (...) {  // a broken reader costs its own sample, not the scrape
      continue;
    }
    prometheus::ClientMetric metric;
    for (const auto& [label, label_value] : labels_of(values)) {  // by name, as prometheus-cpp
      metric.label.push_back({label, label_value});
    }
    if (out.type == prometheus::MetricType::Counter) {
      metric.counter.value = value;
    } else {
      metric.gauge.value = value;
    }
    out.metric.push_back(std::move(metric));
  }
  if (out.metric.empty()) {
    return {};
  }
  return {std::move(out)};
}

}  // namespace gwx::metrics
