#pragma once

#include <string>

#include "worker/sdk/handler.hpp"

namespace gwx::apps {

/// One chat room across the whole cluster: every message goes to every client as
/// "<nick>: <text>"; "/nick NAME" changes the nick (kept in the session); arrivals and
/// departures are announced as "* <nick> joined" / "* <nick> left". The default nick is
/// "guest-" and the last 6 characters of the client_id. Stateless (all state is in sessions),
/// so safe on any number of handler threads.
class chat_app final : public handler {
 public:
  void on_connect(context& ctx) override;
  void on_message(context& ctx, const message& msg) override;
  void on_close(context& ctx) override;

  /// The nick of the client of `ctx`.
  static std::string nick_of(const context& ctx);
};

}  // namespace gwx::apps
