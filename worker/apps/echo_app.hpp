#pragma once

#include "worker/sdk/handler.hpp"

namespace gwx::apps {

/// Sends every message back to its sender, text as text and binary as binary. Stateless, so
/// safe on any number of handler threads.
class echo_app final : public handler {
 public:
  void on_message(context& ctx, const message& msg) override { ctx.send_to_current_client(msg); }
};

}  // namespace gwx::apps
