#include "worker/apps/chat_app.hpp"

#include <string_view>

namespace gwx::apps {
namespace {

constexpr std::string_view k_nick_command = "/nick";
constexpr std::size_t k_max_nick = 32;

std::string_view strip_line_end(std::string_view s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && s.front() == ' ') {
    s.remove_prefix(1);
  }
  while (!s.empty() && s.back() == ' ') {
    s.remove_suffix(1);
  }
  return s;
}

}  // namespace

std::string chat_app::nick_of(const context& ctx) {
  const auto it = ctx.session().find("nick");
  if (it != ctx.session().end() && !it->second.empty()) {
    return it->second;
  }
  const auto& id = ctx.client_id();
  return "guest-" + (id.size() > 6 ? id.substr(id.size() - 6) : id);
}

void chat_app::on_connect(context& ctx) {
  ctx.api().send_to_all("* " + nick_of(ctx) + " joined");
}

void chat_app::on_message(context& ctx, const message& msg) {
  const auto text = strip_line_end(msg.data);
  if (text == k_nick_command || text.substr(0, k_nick_command.size() + 1) == "/nick ") {
    const auto name = trim(text.substr(std::min(text.size(), k_nick_command.size())));
    if (name.empty() || name.size() > k_max_nick) {
      ctx.send_to_current_client("* usage: /nick NAME (1 to 32 characters)");
      return;
    }
    const auto old = nick_of(ctx);
    ctx.session()["nick"] = std::string(name);
    ctx.api().send_to_all("* " + old + " is now " + std::string(name));
    return;
  }
  ctx.api().send_to_all(nick_of(ctx) + ": " + std::string(text));
}

void chat_app::on_close(context& ctx) {
  ctx.api().send_to_all("* " + nick_of(ctx) + " left");
}

}  // namespace gwx::apps
