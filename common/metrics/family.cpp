#include "common/metrics/family.hpp"

#include <stdexcept>

namespace gwx::metrics {

std::string_view to_string(metric_type type) {
  switch (type) {
    case metric_type::counter:
      return "counter";
    case metric_type::gauge:
      return "gauge";
    case metric_type::histogram:
      return "histogram";
  }
  return "untyped";
}

family::family(metric_type type, std::string name, std::string help,
               std::vector<std::string> label_names)
    : type_(type),
      name_(std::move(name)),
      help_(std::move(help)),
      label_names_(std::move(label_names)) {}

std::map<std::string, std::string> family::labels_of(const std::vector<std::string>& values) const {
  if (values.size() != label_names_.size()) {
    throw std::invalid_argument("metric " + name_ + ": " + std::to_string(values.size()) +
                                " label values given for " + std::to_string(label_names_.size()) +
                                " label names");
  }
  std::map<std::string, std::string> labels;
  for (std::size_t i = 0; i < values.size(); ++i) {
    labels.emplace(label_names_[i], values[i]);
  }
  return labels;
}

}  // namespace gwx::metrics
