#include "common/logging.hpp"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>

#include <algorithm>
#include <stdexcept>

#include "common/codec/utf8.hpp"

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

/// Bytes of the UTF-8 sequence `lead` starts (1 for a byte that cannot start one).
std::size_t sequence_length(unsigned char lead) {
  if (lead >= 0xf0) {
    return 4;
  }
  if (lead >= 0xe0) {
    return 3;
  }
  return lead >= 0xc0 ? 2 : 1;
}

}  // namespace

std::string printable(std::string_view text, std::size_t max_bytes) {
  static constexpr char k_hex[] = "0123456789abcdef";
  std::string out;
  std::size_t i = 0;
  while (i < text.size()) {
    const auto lead = static_cast<unsigned char>(text[i]);
    const std::size_t n = std::min(sequence_length(lead), text.size() - i);
    const auto piece = text.substr(i, n);
    // C1 controls (U+0080-U+009F, "\xc2\x80"-"\xc2\x9f") are terminal escapes too.
    const bool c1 = n == 2 && lead == 0xc2 && static_cast<unsigned char>(piece[1]) < 0xa0;
    const bool plain = n > 1 ? !c1 && codec::is_valid_utf8(piece) : lead >= 0x20 && lead < 0x7f;
    const std::size_t cost = plain && lead != '\\' ? n : 4;
    if (out.size() + cost > max_bytes) {
      out += "...(" + std::to_string(text.size()) + " bytes)";
      return out;
    }
    if (plain && lead != '\\') {
      out.append(piece);
      i += n;
    } else {
      const char esc[] = {'\\', 'x', k_hex[lead >> 4], k_hex[lead & 0xf]};
      out.append(esc, sizeof esc);
      ++i;
    }
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
