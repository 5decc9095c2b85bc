#pragma once

#include <initializer_list>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace gwx::metrics {

/// The TYPE of a metric family in the exposition.
enum class metric_type { counter, gauge, histogram };

/// "counter", "gauge" or "histogram".
std::string_view to_string(metric_type type);

/// What every family of a `registry` has: a name, a help text, a type and a fixed list of label
/// names. The registry owns its families: a reference to one stays valid as long as the registry
/// lives. Immutable after construction, so every member may be called from any thread.
class family {
 public:
  virtual ~family() = default;
  family(const family&) = delete;
  family& operator=(const family&) = delete;

  const std::string& name() const { return name_; }
  const std::string& help() const { return help_; }
  metric_type type() const { return type_; }
  const std::vector<std::string>& label_names() const { return label_names_; }

 protected:
  family(metric_type type, std::string name, std::string help,
         std::vector<std::string> label_names);

  /// The labels of the child with these values (one per label name, in order), as prometheus-cpp
  /// keys them. Throws std::invalid_argument on a wrong number of values.
  std::map<std::string, std::string> labels_of(const std::vector<std::string>& values) const;

 private:
  metric_type type_;
  std::string name_;
  std::string help_;
  std::vector<std::string> label_names_;
};

/// Turns the two ways of passing label values into one.
inline std::vector<std::string> label_values(std::initializer_list<std::string_view> values) {
  return {values.begin(), values.end()};
}

}  // namespace gwx::metrics
