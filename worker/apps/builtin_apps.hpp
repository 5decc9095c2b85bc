#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "worker/sdk/handler.hpp"

namespace gwx::apps {

/// A new instance of the built-in app `name` (echo, chat, commands); null when unknown.
std::unique_ptr<handler> make_builtin_app(std::string_view name);

/// The names of the built-in apps.
std::vector<std::string> builtin_app_names();

}  // namespace gwx::apps
