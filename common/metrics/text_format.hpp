#pragma once

#include <cstdint>
#include <string>
#include <string_view>

// Pieces of the Prometheus text exposition format 0.0.4: name rules, escaping, numbers.
// Pure functions, no state: safe from any thread.
namespace gwx::metrics {

/// The Content-Type of the text exposition format.
inline constexpr std::string_view k_text_content_type = "text/plain; version=0.0.4; charset=utf-8";

/// Whether `name` is a valid metric name: [a-zA-Z_:][a-zA-Z0-9_:]*.
bool valid_metric_name(std::string_view name);

/// Whether `name` is a valid label name: [a-zA-Z_][a-zA-Z0-9_]*, not starting with "__"
/// (reserved for Prometheus itself).
bool valid_label_name(std::string_view name);

/// Appends a label value escaped for use between double quotes: \ as \\, " as \", newline as \n.
void append_escaped_label_value(std::string& out, std::string_view value);

/// Appends HELP text escaped: \ as \\, newline as \n.
void append_escaped_help(std::string& out, std::string_view help);

/// Appends a sample value: shortest round-trip digits in %g style (0.0001, 5e-05, 100000,
/// 1e+06), or +Inf, -Inf, NaN.
void append_double(std::string& out, double value);

/// Appends an unsigned integer in decimal.
void append_uint(std::string& out, std::uint64_t value);

/// Appends a signed integer in decimal.
void append_int(std::string& out, std::int64_t value);

}  // namespace gwx::metrics
