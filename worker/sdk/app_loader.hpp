#pragma once

#include <memory>
#include <string>

#include "worker/sdk/handler.hpp"

namespace gwx {

/// Makes the app `name_or_path` names: a built-in app ("echo", "chat", "commands"), or a
/// shared library built with GWX_APP when it contains a '/' or ends in ".so". Throws
/// std::runtime_error with a one-line reason (unknown name, unloadable library, missing entry
/// point, SDK version mismatch). For start-up; thread-compatible.
std::unique_ptr<handler> load_app(const std::string& name_or_path);

}  // namespace gwx
