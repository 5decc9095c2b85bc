#include "common/logging.hpp"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>

#include <stdexcept>
#include <string>

namespace gwx {
namespace {

/// %q: the log message escaped for a JSON string.
class json_message_flag final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    static constexpr char k_hex[] = "0123456789abcdef";
    for (const char c : std::string_view(msg.payload.data(), msg.payload.size())) {
      const auto u = static_cast<unsigned char>(c);
      if (c == '"' || c == '\\') {
        dest.push_back('\\');
        dest.push_back(c);
      } else if (u < 0x20) {
        const char esc[] = {'\\', 'u', '0', '0', k_hex[u >> 4], k_hex[u & 0xf]};
        dest.append(esc, esc + sizeof esc);
      } else {
        dest.push_back(c);
      }
    }
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<json_message_flag>();
  }
};

}  // namespace

std::string log_text(std::string_view text, std::size_t max_bytes) {
  static constexpr char k_hex[] = "0123456789abcdef";
  const auto kept = text.substr(0, max_bytes);
  std::string out;
  out.reserve(kept.size() + 16);
  for (const char c : kept) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u >= 0x7f || c == '\\') {
      const char esc[] = {'\\', 'x', k_hex[u >> 4], k_hex[u & 0xf]};
      out.append(esc, sizeof esc);
    } else {
      out.push_back(c);
    }
  }
  if (kept.size() < text.size()) {
    out += "...(" + std::to_string(text.size()) + " bytes)";
  }
  return out;
}

void init_logging(const std::string& program, const std::string& level, const std::string& format) {
  const auto lvl = spdlog::level::from_str(level);
  if (lvl == spdlog::level::off && level != "off") {
    throw std::invalid_argument("unknown log level '" + level + "'");
  }
  auto logger = spdlog::stderr_logger_mt(program);
  if (format == "text") {
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %n: %v");
  } else if (format == "json") {
    auto formatter = std::make_unique<spdlog::pattern_formatter>();
    formatter->add_flag<json_message_flag>('q').set_pattern(
        R"({"ts":"%Y-%m-%dT%H:%M:%S.%e","level":"%l","bin":"%n","pid":%P,"msg":"%q"})");
    logger->set_formatter(std::move(formatter));
  } else {
    throw std::invalid_argument("unknown log format '" + format + "' (text or json)");
  }
  logger->set_level(lvl);
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(std::move(logger));
}

}  // namespace gwx
