#include "gateway/listener_config.hpp"

#include <gtest/gtest.h>

namespace gwx::gateway {
namespace {

TEST(ListenerConfig, ParsesSchemesHostsAndPaths) {
  const listener_config defaults;
  const auto ws = parse_listener_url("ws://0.0.0.0:8080/chat", defaults);
  EXPECT_EQ(ws.kind, framing::websocket);
  EXPECT_EQ(ws.host, "0.0.0.0");
  EXPECT_EQ(ws.port, 8080);
  EXPECT_EQ(ws.path, "/chat");
  EXPECT_EQ(parse_listener_url("ws://127.0.0.1:0", defaults).path, "/");
  EXPECT_EQ(parse_listener_url("tcp+line://[::1]:9000", defaults).host, "::1");
  EXPECT_EQ(parse_listener_url("tcp+frame://127.0.0.1:1", defaults).kind, framing::frame);
  EXPECT_EQ(parse_listener_url("tcp+raw://127.0.0.1:1", defaults).kind, framing::raw);
}

TEST(ListenerConfig, QueryOverridesDefaults) {
  listener_config defaults;
  defaults.max_message = 100;
  defaults.heartbeat_missed = 7;
  const auto c = parse_listener_url(
      "ws://127.0.0.1:0/?max_message=64&slow_client=drop&origins=https://a,https://b&ask=1"
      "&heartbeat_interval_ms=500&idle_timeout_ms=9",
      defaults);
  EXPECT_EQ(c.max_message, 64U);
  EXPECT_EQ(c.on_slow, slow_policy::drop);
  EXPECT_EQ(c.origins, (std::vector<std::string>{"https://a", "https://b"}));
  EXPECT_TRUE(c.ask_on_connect);
  EXPECT_EQ(c.heartbeat_interval.count(), 500);
  EXPECT_EQ(c.idle_timeout.count(), 9);
  EXPECT_EQ(c.heartbeat_missed, 7U);  // untouched default
}

TEST(ListenerConfig, MaxHandshakesPerIpDefaultsOverridesAndRange) {
  listener_config defaults;
  EXPECT_EQ(defaults.max_handshakes_per_ip, 256U);
  defaults.max_handshakes_per_ip = 40;
  EXPECT_EQ(parse_listener_url("ws://127.0.0.1:0/", defaults).max_handshakes_per_ip, 40U);
  EXPECT_EQ(parse_listener_url("tcp+line://127.0.0.1:0?max_handshakes_per_ip=1", defaults)
                .max_handshakes_per_ip,
            1U);
  EXPECT_EQ(parse_listener_url("ws://127.0.0.1:0/?max_handshakes_per_ip=100000000", defaults)
                .max_handshakes_per_ip,
            100000000U);
  for (const char* bad :
       {"ws://127.0.0.1:1/?max_handshakes_per_ip=0",
        "ws://127.0.0.1:1/?max_handshakes_per_ip=100000001",
        "ws://127.0.0.1:1/?max_handshakes_per_ip=-1", "ws://127.0.0.1:1/?max_handshakes_per_ip="}) {
    try {
      parse_listener_url(bad, defaults);
      ADD_FAILURE() << "accepted " << bad;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("max_handshakes_per_ip="), std::string::npos)
          << e.what();
    }
  }
  // The unknown-option message lists it among the known ones.
  try {
    parse_listener_url("ws://127.0.0.1:1/?max_handshakes=5", defaults);
    ADD_FAILURE() << "accepted max_handshakes";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("max_handshakes_per_ip,"), std::string::npos) << e.what();
  }
}

TEST(ListenerConfig, RejectsBadUrlsWithTheUrlInTheMessage) {
  const listener_config d;
  for (const char* bad :
       {"http://127.0.0.1:80", "ws://127.0.0.1", "127.0.0.1:80", "tcp+line://h:1/path",
        "ws://127.0.0.1:1/?max_message=0", "ws://127.0.0.1:1/?max_message=abc",
        // Larger than a link frame can carry to a worker.
        "ws://127.0.0.1:1/?max_message=66060289", "tcp+frame://127.0.0.1:1?max_message=2147483648",
        "ws://127.0.0.1:1/?nope=1", "tcp+line://127.0.0.1:1?ask=1",
        "ws://127.0.0.1:1/?slow_client=maybe", "ws://127.0.0.1:99999/"}) {
    try {
      parse_listener_url(bad, d);
      ADD_FAILURE() << "accepted " << bad;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(bad), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace gwx::gateway

namespace gwx::gateway {
namespace {

std::string error_of(const std::string& url, const listener_config& defaults) {
  try {
    parse_listener_url(url, defaults);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "no error";
}

TEST(ListenerConfig, TlsSchemesTakeCertificatesFromDefaultsOrTheUrl) {
  listener_config defaults;
  defaults.tls_files.certs = {"gw.pem"};
  defaults.tls_files.keys = {"gw.key"};
  const auto wss = parse_listener_url("wss://0.0.0.0:8443/chat", defaults);
  EXPECT_TRUE(wss.tls);
  EXPECT_EQ(wss.kind, framing::websocket);
  EXPECT_EQ(wss.path, "/chat");
  EXPECT_STREQ(scheme_of(wss.kind, wss.tls), "wss");
  for (const auto& [url, kind] :
       std::vector<std::pair<std::string, framing>>{{"tls+line://127.0.0.1:1", framing::line},
                                                    {"tls+frame://127.0.0.1:1", framing::frame},
                                                    {"tls+raw://127.0.0.1:1", framing::raw}}) {
    const auto c = parse_listener_url(url, defaults);
    EXPECT_TRUE(c.tls) << url;
    EXPECT_EQ(c.kind, kind) << url;
    EXPECT_EQ(std::string(scheme_of(c.kind, c.tls)) + "://127.0.0.1:1", url);
  }
  EXPECT_FALSE(parse_listener_url("tcp+line://127.0.0.1:1", defaults).tls);

  const auto own = parse_listener_url(
      "tls+frame://127.0.0.1:1?tls_cert=a.pem,b.pem&tls_key=a.key,b.key&tls_client_ca=ca.pem"
      "&tls_client_auth=optional",
      defaults);
  EXPECT_EQ(own.tls_files.certs, (std::vector<std::string>{"a.pem", "b.pem"}));
  EXPECT_EQ(own.tls_files.keys, (std::vector<std::string>{"a.key", "b.key"}));
  EXPECT_EQ(own.tls_files.client_ca, "ca.pem");
  EXPECT_EQ(own.tls_files.client_auth, "optional");
}

TEST(ListenerConfig, TlsConfigurationErrorsAreClear) {
  const listener_config none;
  EXPECT_NE(error_of("wss://127.0.0.1:0/", none).find("needs a certificate"), std::string::npos);
  EXPECT_NE(error_of("tls+line://127.0.0.1:0?tls_cert=a.pem", none).find("needs a certificate"),
            std::string::npos);
  EXPECT_NE(
      error_of("tls+line://127.0.0.1:0?tls_cert=a.pem,b.pem&tls_key=a.key", none).find("pair up"),
      std::string::npos);
  EXPECT_NE(error_of("ws://127.0.0.1:0/?tls_cert=a.pem", none).find("tls_cert applies to"),
            std::string::npos);
  EXPECT_NE(error_of("wss://127.0.0.1:0/?tls_cert=a&tls_key=b&tls_client_auth=require", none)
                .find("needs a CA"),
            std::string::npos);
  EXPECT_NE(error_of("wss://127.0.0.1:0/?tls_cert=a&tls_key=b&tls_client_auth=maybe", none)
                .find("none, optional or require"),
            std::string::npos);
  EXPECT_NE(error_of("tls+udp://127.0.0.1:0", none).find("unsupported scheme"), std::string::npos);
}

}  // namespace
}  // namespace gwx::gateway
