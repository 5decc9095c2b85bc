// An example user app: greets each client, puts it in the "lobby" group, answers
// "name NAME" by remembering the name in the session, and relays anything else to the lobby
// with that name. Build: the gwx_example_app target; run:
//   gwx-worker --register 127.0.0.1:7000 --secret S --app ./build/bin/libgwx_example_app.so
#include <atomic>
#include <string>

#include "worker/sdk/app.hpp"

namespace {

class greeter_app final : public gwx::handler {
 public:
  void on_worker_start(gwx::gateway_api& api) override {
    (void)api;
    started_ = true;
  }

  void on_connect(gwx::context& ctx) override {
    ctx.api().join_group(ctx.client_id(), "lobby");
    ctx.send_to_current_client("hello " + ctx.client_id());
  }

  void on_message(gwx::context& ctx, const gwx::message& msg) override {
    const std::string prefix = "name ";
    if (msg.data.rfind(prefix, 0) == 0 && msg.data.size() > prefix.size()) {
      ctx.session()["name"] = msg.data.substr(prefix.size());
      ctx.send_to_current_client("you are " + ctx.session()["name"]);
      return;
    }
    const auto it = ctx.session().find("name");
    const std::string who = it == ctx.session().end() ? "someone" : it->second;
    ctx.api().send_to_group({"lobby"}, who + " says " + msg.data);
    ++relayed_;
  }

  void on_close(gwx::context& ctx) override {
    ctx.api().send_to_group({"lobby"}, ctx.client_id() + " left");
  }

 private:
  std::atomic<bool> started_{false};
  std::atomic<unsigned long> relayed_{0};
};

}  // namespace

GWX_APP(greeter_app)
