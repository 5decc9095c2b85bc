// The built-in echo and chat apps against an in-memory cluster, and app loading by name/path.
#include "worker/apps/builtin_apps.hpp"

#include <gtest/gtest.h>

#include "tests/unit/cluster/fake_cluster.hpp"
#include "worker/apps/chat_app.hpp"
#include "worker/sdk/app_loader.hpp"

namespace gwx::apps {
namespace {

using fakes::fake_cluster;
using string_list = std::vector<std::string>;

class BuiltinAppsTest : public ::testing::Test, protected fakes::fake_api {
 protected:
  BuiltinAppsTest() : gw_(cluster->add_gateway(7001, 0x77)) {
    a_ = cluster->connect(gw_);
    b_ = cluster->connect(gw_);
  }

  context ctx_for(const std::string& id, session_map session = {}) {
    return context(api, client_info{id, "127.0.0.1", 1, gw_.address, "ws://x/", ""},
                   std::move(session));
  }

  fake_cluster::gateway& gw_;
  std::string a_;
  std::string b_;
};

TEST_F(BuiltinAppsTest, EchoKeepsTextAndBinaryApart) {
  auto echo = make_builtin_app("echo");
  ASSERT_TRUE(echo);
  auto ctx = ctx_for(a_);
  echo->on_message(ctx, message("hi there"));
  echo->on_message(ctx, message::bytes(std::string("\x00\xff", 2)));
  const auto& inbox = cluster->find(a_)->inbox;
  ASSERT_EQ(inbox.size(), 2U);
  EXPECT_EQ(inbox[0], message("hi there"));
  EXPECT_EQ(inbox[1], message::bytes(std::string("\x00\xff", 2)));
  EXPECT_TRUE(cluster->inbox(b_).empty());
}

TEST_F(BuiltinAppsTest, ChatAnnouncesRelaysAndRenames) {
  auto chat = make_builtin_app("chat");
  ASSERT_TRUE(chat);
  const auto guest = "guest-" + a_.substr(a_.size() - 6);
  auto ctx = ctx_for(a_);
  chat->on_connect(ctx);
  chat->on_message(ctx, message("hello all\n"));
  chat->on_message(ctx, message("/nick  zoe "));
  EXPECT_EQ(ctx.session().at("nick"), "zoe");
  chat->on_message(ctx, message("/nick"));
  chat->on_message(ctx, message("now named"));
  chat->on_close(ctx);
  EXPECT_EQ(cluster->inbox(b_),
            (string_list{"* " + guest + " joined", guest + ": hello all",
                         "* " + guest + " is now zoe", "zoe: now named", "* zoe left"}));
  // The usage hint goes to the sender only.
  EXPECT_EQ(cluster->inbox(a_).at(3).rfind("* usage: /nick", 0), 0U);
}

TEST(AppLoaderTest, BuiltinNamesAndErrors) {
  for (const auto& name : builtin_app_names()) {
    EXPECT_TRUE(load_app(name)) << name;
  }
  try {
    load_app("nope");
    FAIL() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("unknown app 'nope'"), std::string::npos) << e.what();
  }
  try {
    load_app("./does-not-exist/libapp.so");
    FAIL() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot load"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace gwx::apps
