#include "common/bus/bus_url.hpp"

#include <gtest/gtest.h>

#include <stdexcept>

#include "common/options.hpp"

namespace gwx::bus {
namespace {

TEST(bus_url, redis) {
  auto u = parse_bus_url("redis://127.0.0.1:6380/gwx.push");
  EXPECT_EQ(u.kind, bus_kind::redis);
  EXPECT_EQ(u.host, "127.0.0.1");
  EXPECT_EQ(u.port, 6380);
  EXPECT_EQ(u.channel, "gwx.push");
  EXPECT_TRUE(u.password.empty());
  u = parse_bus_url("redis://app:s%40cret@[::1]:6379/ch");
  EXPECT_EQ(u.host, "::1");
  EXPECT_EQ(u.user, "app");
  EXPECT_EQ(u.password, "s@cret");
  EXPECT_EQ(u.redacted(), "redis://app:***@[::1]:6379/ch");
  EXPECT_EQ(parse_bus_url("redis://:pw@h:1/c").password, "pw");
}

TEST(bus_url, amqp) {
  auto u = parse_bus_url("amqp://gwx:pw@10.0.0.1:5672/%2F?exchange=push&mode=routed");
  EXPECT_EQ(u.kind, bus_kind::amqp_routed);
  EXPECT_EQ(u.vhost, "/");
  EXPECT_EQ(u.exchange, "push");
  EXPECT_EQ(u.user, "gwx");
  EXPECT_EQ(u.password, "pw");
  EXPECT_EQ(std::string(u.mode_name()), "amqp-routed");
  EXPECT_EQ(u.redacted(), "amqp://gwx:***@10.0.0.1:5672/%2F?exchange=push&mode=routed");
  u = parse_bus_url("amqp://u:p@h:1/prod?mode=fanout&exchange=x");
  EXPECT_EQ(u.kind, bus_kind::amqp_fanout);
  EXPECT_EQ(u.vhost, "prod");
}

TEST(bus_url, bad_urls_are_explained_without_the_password) {
  for (const char* bad :
       {"http://h:1/c", "redis://h:1", "redis://h:1/", "redis://h:0/c", "redis://h:99999/c",
        "redis://h:x/c", "redis://:1/c", "redis://h:1/c?x=1",
        "amqp://u:topsecret@h:1/v?mode=fanout", "amqp://u:topsecret@h:1/v?exchange=x",
        "amqp://u:topsecret@h:1/v?exchange=x&mode=direct",
        "amqp://u:topsecret@h:1/v?exchange=x&mode=fanout&durable=1", "redis://u:topsecret%zz@h:1/c",
        // A '?' or '/' in the password, not percent-encoded, ends the host part early: with
        // digits before it, "u:1234" reads as a host and port, and the rest of the password
        // as a query parameter or the channel (accepted, then logged with the URL).
        "amqp://u:1234?secret@h:1/v?exchange=x&mode=fanout",
        "amqp://u:1234/secret@h:1/v?exchange=x&mode=fanout", "redis://u:1234/secret@h:1/c"}) {
    try {
      parse_bus_url(bad);
      ADD_FAILURE() << "accepted " << bad;
    } catch (const std::invalid_argument& e) {
      EXPECT_EQ(std::string(e.what()).find("secret"), std::string::npos) << e.what();
      EXPECT_EQ(std::string(e.what()).rfind("bad --bus URL: ", 0), 0U) << e.what();
    }
  }
}

TEST(bus_url, print_config_masks_url_passwords) {
  EXPECT_EQ(redact_url_password("amqp://u:pw@h:1/v?exchange=x"), "amqp://u:***@h:1/v?exchange=x");
  EXPECT_EQ(redact_url_password("redis://h:1/c"), "redis://h:1/c");
  EXPECT_EQ(redact_url_password("redis://user@h:1/c"), "redis://user@h:1/c");
}

}  // namespace
}  // namespace gwx::bus
