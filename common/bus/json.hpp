#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace gwx::bus {

/// A parsed JSON value (RFC 8259): null, bool, number, string, array or object. Numbers keep
/// their double value; strings are UTF-8 with escapes resolved. Object members keep their order;
/// a key that repeats is an error at parse time, so each key is found at most once.
class json_value {
 public:
  enum class kind { null, boolean, number, string, array, object };

  kind type() const { return kind_; }
  bool is_string() const { return kind_ == kind::string; }
  bool is_array() const { return kind_ == kind::array; }
  bool is_object() const { return kind_ == kind::object; }

  bool as_bool() const { return bool_; }
  double as_number() const { return number_; }
  const std::string& as_string() const { return string_; }
  const std::vector<json_value>& items() const { return items_; }
  const std::vector<std::pair<std::string, json_value>>& members() const { return members_; }

  /// The member named `key` of an object; null when absent or not an object.
  const json_value* find(std::string_view key) const;

 private:
  friend class json_parser;

  kind kind_ = kind::null;
  bool bool_ = false;
  double number_ = 0;
  std::string string_;
  std::vector<json_value> items_;
  std::vector<std::pair<std::string, json_value>> members_;
};

/// Limits a parse stays within whatever the input: nesting depth (arrays and objects) and the
/// number of values, so hostile input costs bounded stack and memory besides its own size.
struct json_limits {
  std::size_t max_depth = 16;
  std::size_t max_values = 100000;
};

/// The outcome of json_parse(): a value, or an error with the byte offset where it was found.
struct json_result {
  bool ok = false;
  json_value value;
  std::string error;
  std::size_t offset = 0;
};

/// Parses one JSON text (surrounding whitespace allowed, nothing else after it). Strict:
/// no comments, no trailing commas, no leading zeros, no control characters or invalid UTF-8
/// in strings, lone surrogates in \u escapes rejected, duplicate keys rejected. Never throws
/// on bad input; recursion depth is bounded by `limits.max_depth`. Thread-safe (no state).
json_result json_parse(std::string_view text, const json_limits& limits = {});

/// Appends `s` to `out` as a JSON string literal (quotes included); `s` must be UTF-8.
void json_append_string(std::string& out, std::string_view s);

}  // namespace gwx::bus
