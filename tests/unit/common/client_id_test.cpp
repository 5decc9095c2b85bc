#include "common/client_id.hpp"

#include <gtest/gtest.h>

#include <cstring>

#include "common/link_auth.hpp"
#include "common/net/endpoint.hpp"

namespace gwx {
namespace {

TEST(ClientId, RoundTripsIpv4AndIpv6) {
  const auto v4 = make_client_id("127.0.0.1", 9000, 0x1122334455667788ULL, (42ULL << 8) | 3);
  ASSERT_EQ(v4.size(), 48U);
  const auto p4 = parse_client_id(v4);
  ASSERT_TRUE(p4);
  EXPECT_EQ(p4->gateway_address, "127.0.0.1:9000");
  EXPECT_EQ(p4->epoch, 0x1122334455667788ULL);
  EXPECT_EQ(p4->connection >> 8, 42U);
  EXPECT_EQ(p4->loop(), 3U);

  const auto v6 = make_client_id("::1", 65535, 7, 1);
  ASSERT_EQ(v6.size(), 72U);
  const auto p6 = parse_client_id(v6);
  ASSERT_TRUE(p6);
  EXPECT_EQ(p6->gateway_address, "[::1]:65535");
}

TEST(ClientId, ConnectionFromTheTail) {
  const auto v4 = make_client_id("127.0.0.1", 9000, 0x1122334455667788ULL, (42ULL << 8) | 3);
  EXPECT_EQ(client_id_connection(v4), (42ULL << 8) | 3);
  EXPECT_EQ(client_id_connection(make_client_id("::1", 1, 7, ~0ULL)), ~0ULL);
  EXPECT_EQ(client_id_connection(v4.substr(1)), std::nullopt);
  auto bad = v4;
  bad.back() = 'g';
  EXPECT_EQ(client_id_connection(bad), std::nullopt);
  bad.back() = 'A';  // upper case is not a client_id
  EXPECT_EQ(client_id_connection(bad), std::nullopt);
}

TEST(ClientId, EveryByteAtEveryPlaceOfTheConnection) {
  for (const std::uint64_t connection :
       {0ULL, 0x0123456789abcdefULL, 0xfedcba9876543210ULL, 0x8000000000000001ULL}) {
    const auto id = make_client_id("10.1.2.3", 4242, 99, connection);
    ASSERT_EQ(client_id_connection(id), connection);
    for (std::size_t place = id.size() - 16; place < id.size(); ++place) {
      const int shift = static_cast<int>(4 * (id.size() - 1 - place));
      for (int byte = 0; byte < 256; ++byte) {
        auto changed = id;
        changed[place] = static_cast<char>(byte);
        const char* digits = "0123456789abcdef";
        const char* hit = byte == 0 ? nullptr : std::strchr(digits, byte);
        if (hit == nullptr) {
          EXPECT_EQ(client_id_connection(changed), std::nullopt) << place << " " << byte;
          continue;
        }
        const auto digit = static_cast<std::uint64_t>(hit - digits);
        const std::uint64_t expected = (connection & ~(0xfULL << shift)) | (digit << shift);
        EXPECT_EQ(client_id_connection(changed), expected) << place << " " << byte;
      }
    }
  }
}

TEST(ClientId, DifferentEpochsNeverCollide) {
  EXPECT_NE(make_client_id("10.0.0.1", 1, 1, 1), make_client_id("10.0.0.1", 1, 2, 1));
  EXPECT_NE(new_epoch(), new_epoch());
}

TEST(ClientId, RejectsGarbage) {
  EXPECT_FALSE(parse_client_id(""));
  EXPECT_FALSE(parse_client_id("hello"));
  auto id = make_client_id("127.0.0.1", 1, 1, 1);
  id[0] = 'z';
  EXPECT_FALSE(parse_client_id(id));
  auto wrong_version = make_client_id("127.0.0.1", 1, 1, 1);
  wrong_version[1] = '2';
  EXPECT_FALSE(parse_client_id(wrong_version));
  EXPECT_TRUE(make_client_id("not-an-ip", 1, 1, 1).empty());
}

TEST(Endpoint, ParsesAndRejects) {
  EXPECT_EQ(parse_host_port("127.0.0.1:80").port, 80);
  EXPECT_EQ(parse_host_port("[::1]:0").host, "::1");
  EXPECT_EQ(parse_host_port_list("a:1,b:2").size(), 2U);
  EXPECT_THROW(parse_host_port("127.0.0.1"), std::invalid_argument);
  EXPECT_THROW(parse_host_port("h:70000"), std::invalid_argument);
  EXPECT_THROW(parse_host_port("::1:80"), std::invalid_argument);
  EXPECT_THROW(parse_host_port(":80"), std::invalid_argument);
}

TEST(LinkAuth, NoncesAreFreshAndHmacNeverContainsTheKey) {
  const auto g = link_auth::make_nonce();
  EXPECT_EQ(g.size(), 16U);
  EXPECT_NE(g, link_auth::make_nonce());
  const auto mac = link_auth::hmac_sha256("s3cret", "data");
  EXPECT_EQ(mac.size(), 32U);
  EXPECT_TRUE(link_auth::equal(mac, link_auth::hmac_sha256("s3cret", "data")));
  EXPECT_FALSE(link_auth::equal(mac, link_auth::hmac_sha256("other", "data")));
  EXPECT_EQ(mac.find("s3cret"), std::string::npos);
}

}  // namespace
}  // namespace gwx
