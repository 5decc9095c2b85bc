#pragma once

#include <spdlog/spdlog.h>

#include <string>

namespace gwx {

/// Sets up the default spdlog logger (stderr) for a binary. `format` is "text" or "json".
/// Throws std::invalid_argument on an unknown level or format.
void init_logging(const std::string& program, const std::string& level, const std::string& format);

}  // namespace gwx
