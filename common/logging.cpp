#include "common/logging.hpp"

#include <spdlog/sinks/stdout_sinks.h>

#include <stdexcept>

namespace gwx {

void init_logging(const std::string& program, const std::string& level, const std::string& format) {
  const auto lvl = spdlog::level::from_str(level);
  if (lvl == spdlog::level::off && level != "off") {
    throw std::invalid_argument("unknown log level '" + level + "'");
  }
  auto logger = spdlog::stderr_logger_mt(program);
  if (format == "text") {
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %n: %v");
  } else if (format == "json") {
    logger->set_pattern(
        R"({"ts":"%Y-%m-%dT%H:%M:%S.%e","level":"%l","bin":"%n","pid":%P,"msg":"%v"})");
  } else {
    throw std::invalid_argument("unknown log format '" + format + "' (text or json)");
  }
  logger->set_level(lvl);
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(std::move(logger));
}

}  // namespace gwx
