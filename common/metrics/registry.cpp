#include "common/metrics/registry.hpp"

#include <set>
#include <stdexcept>

#include "common/metrics/text_format.hpp"

namespace gwx::metrics {
namespace {

// gwx names are lowercase snake_case: a subset of what the format allows (no capitals, no colons,
// which Prometheus reserves for recording rules).
bool snake_case(std::string_view name) {
  for (const char c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) {
      return false;
    }
  }
  return true;
}

[[noreturn]] void reject(const std::string& name, const std::string& why) {
  throw std::invalid_argument("metric " + name + ": " + why);
}

void check_names(metric_type type, const std::string& name, const std::string& help,
                 const std::vector<std::string>& label_names) {
  if (!valid_metric_name(name) || !snake_case(name)) {
    reject(name, "name must match [a-z_][a-z0-9_]*");
  }
  if (help.empty()) {
    reject(name, "help text required");
  }
  const bool total = name.ends_with("_total");
  if (type == metric_type::counter && !total) {
    reject(name, "a counter's name ends in _total");
  }
  if (type != metric_type::counter && total) {
    reject(name, "only a counter's name ends in _total");
  }
  if (name.ends_with("_bucket") || name.ends_with("_sum") || name.ends_with("_count")) {
    reject(name, "_bucket, _sum and _count are the suffixes of a histogram's samples");
  }
  std::set<std::string_view> seen;
  for (const auto& label : label_names) {
    if (!valid_label_name(label) || !snake_case(label)) {
      reject(name, "label name '" + label + "' must match [a-z_][a-z0-9_]* without a leading __");
    }
    if (type == metric_type::histogram && label == "le") {
      reject(name, "a histogram cannot have a label 'le'");
    }
    if (!seen.insert(label).second) {
      reject(name, "label name '" + label + "' given twice");
    }
  }
}

}  // namespace

family* registry::check_new_locked(metric_type type, const std::string& name,
                                   const std::string& help,
                                   const std::vector<std::string>& label_names,
                                   const std::vector<double>* bounds) const {
  check_names(type, name, help, label_names);
  const auto found = families_.find(name);
  if (found == families_.end()) {
    return nullptr;
  }
  family& existing = *found->second;
  if (existing.type() != type || existing.help() != help || existing.label_names() != label_names) {
    reject(name, "already registered with another type, help or label names");
  }
  if (bounds != nullptr) {
    const auto& hist = static_cast<const histogram_family&>(existing);
    if (hist.bounds() != checked_buckets(*bounds)) {
      reject(name, "already registered with other buckets");
    }
  }
  return &existing;
}

template <typename Family, typename Make>
Family& registry::add(metric_type type, const std::string& name, const std::string& help,
                      const std::vector<std::string>& label_names,
                      const std::vector<double>* bounds, Make make) {
  std::lock_guard lock(mutex_);
  if (family* existing = check_new_locked(type, name, help, label_names, bounds)) {
    // Same name and shape, but a plain family and a callback family are different things.
    auto* same = dynamic_cast<Family*>(existing);
    if (same == nullptr) {
      reject(name, "already registered as another kind of family (callback or not)");
    }
    return *same;
  }
  std::unique_ptr<Family> created(make());
  Family& result = *created;
  families_.emplace(name, std::move(created));
  return result;
}

counter_family& registry::add_counter(const std::string& name, const std::string& help,
                                      std::vector<std::string> label_names) {
  return add<counter_family>(metric_type::counter, name, help, label_names, nullptr,
                             [&] { return new counter_family(name, help, label_names); });
}

gauge_family& registry::add_gauge(const std::string& name, const std::string& help,
                                  std::vector<std::string> label_names) {
  return add<gauge_family>(metric_type::gauge, name, help, label_names, nullptr,
                           [&] { return new gauge_family(name, help, label_names); });
}

histogram_family& registry::add_histogram(const std::string& name, const std::string& help,
                                          std::vector<double> bounds,
                                          std::vector<std::string> label_names) {
  return add<histogram_family>(metric_type::histogram, name, help, label_names, &bounds, [&] {
    return new histogram_family(name, help, label_names, bounds);
  });
}

callback_family& registry::add_callback_gauge(const std::string& name, const std::string& help,
                                              std::vector<std::string> label_names) {
  return add<callback_family>(metric_type::gauge, name, help, label_names, nullptr, [&] {
    return new callback_family(metric_type::gauge, name, help, label_names);
  });
}

callback_family& registry::add_callback_counter(const std::string& name, const std::string& help,
                                                std::vector<std::string> label_names) {
  return add<callback_family>(metric_type::counter, name, help, label_names, nullptr, [&] {
    return new callback_family(metric_type::counter, name, help, label_names);
  });
}

std::string registry::expose() const {
  std::string out;
  expose(out);
  return out;
}

void registry::expose(std::string& out) const {
  std::lock_guard lock(mutex_);
  for (const auto& [name, entry] : families_) {
    entry->render(out);
  }
}

}  // namespace gwx::metrics
