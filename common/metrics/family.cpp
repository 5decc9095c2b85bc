#include "common/metrics/family.hpp"

#include <stdexcept>

#include "common/metrics/text_format.hpp"

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

void family::render(std::string& out) const {
  out += "# HELP ";
  out += name_;
  out += ' ';
  append_escaped_help(out, help_);
  out += "\n# TYPE ";
  out += name_;
  out += ' ';
  out += to_string(type_);
  out += '\n';
  render_samples(out);
}

std::vector<std::string> family::make_key(std::vector<std::string> values) const {
  if (values.size() != label_names_.size()) {
    throw std::invalid_argument("metric " + name_ + ": " + std::to_string(values.size()) +
                                " label values given for " + std::to_string(label_names_.size()) +
                                " label names");
  }
  return values;
}

std::string family::render_label_pairs(const std::vector<std::string>& key) const {
  std::string pairs;
  for (std::size_t i = 0; i < key.size(); ++i) {
    if (i > 0) {
      pairs += ',';
    }
    pairs += label_names_[i];
    pairs += "=\"";
    append_escaped_label_value(pairs, key[i]);
    pairs += '"';
  }
  return pairs;
}

void append_sample_prefix(std::string& out, std::string_view name, std::string_view pairs) {
  out += name;
  if (!pairs.empty()) {
    out += '{';
    out += pairs;
    out += '}';
  }
  out += ' ';
}

}  // namespace gwx::metrics
