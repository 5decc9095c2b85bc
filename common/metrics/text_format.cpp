#include "common/metrics/text_format.hpp"

#include <array>
#include <charconv>
#include <cmath>

namespace gwx::metrics {
namespace {

bool is_alpha(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

template <typename T, typename... Format>
void append_number(std::string& out, T value, Format... format) {
  std::array<char, 32> buffer{};
  const auto [end, ec] =
      std::to_chars(buffer.data(), buffer.data() + buffer.size(), value, format...);
  out.append(buffer.data(), ec == std::errc() ? end : buffer.data());
}

// [a-zA-Z_][a-zA-Z0-9_]*, with ':' allowed anywhere when `colons`.
bool valid_identifier(std::string_view name, bool colons) {
  if (name.empty()) {
    return false;
  }
  for (std::size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    if (!(is_alpha(c) || c == '_' || (colons && c == ':') || (i > 0 && is_digit(c)))) {
      return false;
    }
  }
  return true;
}

// Backslash and newline are escaped everywhere; double quotes only inside label values.
void append_escaped(std::string& out, std::string_view text, bool quotes) {
  for (const char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '"' && quotes) {
      out += "\\\"";
    } else {
      out += c;
    }
  }
}

}  // namespace

bool valid_metric_name(std::string_view name) {
  return valid_identifier(name, true);
}

bool valid_label_name(std::string_view name) {
  return !name.starts_with("__") && valid_identifier(name, false);
}

void append_escaped_label_value(std::string& out, std::string_view value) {
  append_escaped(out, value, true);
}

void append_escaped_help(std::string& out, std::string_view help) {
  append_escaped(out, help, false);
}

void append_double(std::string& out, double value) {
  if (std::isnan(value)) {
    out += "NaN";
  } else if (std::isinf(value)) {
    out += value > 0 ? "+Inf" : "-Inf";
  } else {
    // Shortest round-trip digits, %g-style choice of notation: the same text as the Go client
    // (FormatFloat 'g', -1), so `le` labels of one bound match whichever client wrote them.
    append_number(out, value, std::chars_format::general);
  }
}

void append_uint(std::string& out, std::uint64_t value) {
  append_number(out, value);
}

void append_int(std::string& out, std::int64_t value) {
  append_number(out, value);
}

}  // namespace gwx::metrics
