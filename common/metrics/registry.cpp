#include "common/metrics/registry.hpp"

#include <prometheus/check_names.h>
#include <prometheus/text_serializer.h>

#include <algorithm>
#include <set>
#include <sstream>
#include <stdexcept>
#include <utility>

namespace gwx::metrics {
namespace {

// gwx names are lowercase snake_case: a subset of what the format allows (no capitals, no colons,
// which Prometheus reserves for recording rules).
bool snake_case(std::string_view name) {
  return !name.empty() && !(name[0] >= '0' && name[0] <= '9') &&
         std::all_of(name.begin(), name.end(), [](char c) {
           return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
         });
}

[[noreturn]] void reject(const std::string& name, const std::string& why) {
  throw std::invalid_argument("metric " + name + ": " + why);
}

void check_name(const std::string& name) {
  if (!prometheus::CheckMetricName(name) || !snake_case(name)) {
    reject(name, "name must match [a-z_][a-z0-9_]*");
  }
}

void check_names(metric_type type, const std::string& name, const std::string& help,
                 const std::vector<std::string>& label_names) {
  check_name(name);
  // prometheus-cpp writes HELP as given: one line without escapes keeps the exposition valid.
  if (help.empty() || help.find_first_of("\\\n") != std::string::npos) {
    reject(name, "help text required, one line, no backslash");
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
    if (!prometheus::CheckLabelName(label) || !snake_case(label) || label.starts_with("__")) {
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

collectable_registration::collectable_registration(collectable_registration&& other) noexcept
    : owner_(std::exchange(other.owner_, nullptr)),
      collectable_(std::exchange(other.collectable_, nullptr)) {}

collectable_registration& collectable_registration::operator=(
    collectable_registration&& other) noexcept {
  if (this != &other) {
    reset();
    owner_ = std::exchange(other.owner_, nullptr);
    collectable_ = std::exchange(other.collectable_, nullptr);
  }
  return *this;
}

void collectable_registration::reset() {
  if (owner_ != nullptr) {
    owner_->remove_collectable(collectable_);
    owner_ = nullptr;
    collectable_ = nullptr;
  }
}

registry::registry() : families_registry_(prometheus::Registry::InsertBehavior::Throw) {}

registry::~registry() = default;

family* registry::check_new_locked(metric_type type, const std::string& name,
                                   const std::string& help,
                                   const std::vector<std::string>& label_names,
                                   const std::vector<double>* bounds) const {
  check_names(type, name, help, label_names);
  for (const auto& entry : externals_) {
    if (std::find(entry.names.begin(), entry.names.end(), name) != entry.names.end()) {
      reject(name, "already registered by a collector");
    }
  }
  const auto found = families_.find(name);
  if (found == families_.end()) {
    return nullptr;
  }
  family& existing = *found->second;
  if (existing.type() != type || existing.help() != help || existing.label_names() != label_names) {
    reject(name, "already registered with another type, help or label names");
  }
  if (bounds != nullptr) {
    const auto* hist = dynamic_cast<const histogram_family*>(&existing);
    if (hist == nullptr || hist->bounds() != checked_buckets(*bounds)) {
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
  return add<counter_family>(metric_type::counter, name, help, label_names, nullptr, [&] {
    auto& children = prometheus::BuildCounter().Name(name).Help(help).Register(families_registry_);
    return new counter_family(name, help, label_names, children);
  });
}

gauge_family& registry::add_gauge(const std::string& name, const std::string& help,
                                  std::vector<std::string> label_names) {
  return add<gauge_family>(metric_type::gauge, name, help, label_names, nullptr, [&] {
    auto& children = prometheus::BuildGauge().Name(name).Help(help).Register(families_registry_);
    return new gauge_family(name, help, label_names, children);
  });
}

histogram_family& registry::add_histogram(const std::string& name, const std::string& help,
                                          std::vector<double> bounds,
                                          std::vector<std::string> label_names) {
  return add<histogram_family>(metric_type::histogram, name, help, label_names, &bounds, [&] {
    auto checked = checked_buckets(bounds);
    auto& children =
        prometheus::BuildHistogram().Name(name).Help(help).Register(families_registry_);
    return new histogram_family(name, help, label_names, std::move(checked), children);
  });
}

callback_family& registry::add_callback_gauge(const std::string& name, const std::string& help,
                                              std::vector<std::string> label_names) {
  return add<callback_family>(metric_type::gauge, name, help, label_names, nullptr, [&] {
    auto* created = new callback_family(metric_type::gauge, name, help, label_names);
    callback_families_.push_back(created);
    return created;
  });
}

callback_family& registry::add_callback_counter(const std::string& name, const std::string& help,
                                                std::vector<std::string> label_names) {
  return add<callback_family>(metric_type::counter, name, help, label_names, nullptr, [&] {
    auto* created = new callback_family(metric_type::counter, name, help, label_names);
    callback_families_.push_back(created);
    return created;
  });
}

collectable_registration registry::add_collectable(
    std::shared_ptr<const prometheus::Collectable> collectable,
    const std::vector<std::string>& family_names) {
  if (!collectable) {
    throw std::invalid_argument("add_collectable: null collectable");
  }
  std::lock_guard lock(mutex_);
  for (const auto& name : family_names) {
    check_name(name);
    if (families_.contains(name)) {
      reject(name, "already registered");
    }
    for (const auto& entry : externals_) {
      if (std::find(entry.names.begin(), entry.names.end(), name) != entry.names.end()) {
        reject(name, "already registered by a collector");
      }
    }
  }
  const auto* raw = collectable.get();
  externals_.push_back({std::move(collectable), family_names});
  return {this, raw};
}

void registry::remove_collectable(const prometheus::Collectable* collectable) {
  std::lock_guard lock(mutex_);
  std::erase_if(externals_,
                [collectable](const external& e) { return e.collectable.get() == collectable; });
}

std::vector<prometheus::MetricFamily> registry::collect() const {
  std::vector<prometheus::MetricFamily> out;
  {
    std::lock_guard lock(mutex_);
    out = families_registry_.Collect();
    const auto append = [&out](std::vector<prometheus::MetricFamily> more) {
      std::move(more.begin(), more.end(), std::back_inserter(out));
    };
    for (const auto* callbacks : callback_families_) {
      append(callbacks->Collect());
    }
    for (const auto& entry : externals_) {
      append(entry.collectable->Collect());
    }
  }
  // prometheus-cpp keeps families by type and children in hash order: sort, so that every scrape
  // lists the same things in the same place.
  std::erase_if(out, [](const prometheus::MetricFamily& f) { return f.metric.empty(); });
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  for (auto& f : out) {
    std::sort(f.metric.begin(), f.metric.end(),
              [](const auto& a, const auto& b) { return a.label < b.label; });
  }
  return out;
}

std::string registry::expose() const {
  std::string out;
  expose(out);
  return out;
}

void registry::expose(std::string& out) const {
  std::ostringstream text;
  prometheus::TextSerializer().Serialize(text, collect());
  out += std::move(text).str();
}

}  // namespace gwx::metrics
