#include "worker/apps/builtin_apps.hpp"

#include "worker/apps/chat_app.hpp"
#include "worker/apps/commands_app.hpp"
#include "worker/apps/echo_app.hpp"

namespace gwx::apps {

std::unique_ptr<handler> make_builtin_app(std::string_view name) {
  if (name == "echo") {
    return std::make_unique<echo_app>();
  }
  if (name == "chat") {
    return std::make_unique<chat_app>();
  }
  if (name == "commands") {
    return std::make_unique<commands_app>();
  }
  return nullptr;
}

std::vector<std::string> builtin_app_names() {
  return {"echo", "chat", "commands"};
}

}  // namespace gwx::apps
