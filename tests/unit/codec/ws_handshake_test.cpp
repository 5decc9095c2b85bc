#include "common/codec/ws_handshake.hpp"

#include <gtest/gtest.h>

#include <string>

namespace gwx::codec {
namespace {

using ws::handshake_parser;
using ws::handshake_result;
using kind = handshake_result::kind;

const std::string k_request =
    "GET /chat/room?token=abc&x=1 HTTP/1.1\r\n"
    "Host: server.example.com\r\n"
    "Upgrade: websocket\r\n"
    "Connection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Origin: http://example.com\r\n"
    "Sec-WebSocket-Protocol: chat, superchat\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "X-Custom:   padded value \t\r\n"
    "Cookie: session=s1; theme=\"dark\"\r\n"
    "\r\n";

/// The example request with one header line replaced (empty `with` removes it).
std::string with_header(std::string_view name, std::string_view with) {
  std::string req = k_request;
  const auto at = req.find(std::string(name) + ":");
  EXPECT_NE(at, std::string::npos) << name;
  const auto end = req.find("\r\n", at) + 2;
  req.replace(at, end - at, with.empty() ? std::string() : std::string(with) + "\r\n");
  return req;
}

handshake_result parse_once(std::string_view in, std::size_t max_head = 8192) {
  handshake_parser parser(max_head);
  return parser.parse(in);
}

void expect_error(const std::string& req, int status) {
  const auto r = parse_once(req);
  EXPECT_EQ(r.type, kind::error) << req;
  EXPECT_EQ(r.http_status, status) << req;
  EXPECT_STRNE(r.reason, "");
}

TEST(WsHandshake, RfcExampleAcceptKey) {
  EXPECT_EQ(ws::make_accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST(WsHandshake, ParsesAValidUpgrade) {
  const std::string wire = k_request + "\x81\x85";  // the first frame may follow at once
  handshake_parser parser;
  const auto r = parser.parse(wire);
  ASSERT_EQ(r.type, kind::upgrade) << r.reason;
  EXPECT_EQ(r.consumed, k_request.size());
  const auto& req = parser.request();
  EXPECT_EQ(req.method, "GET");
  EXPECT_EQ(req.target, "/chat/room?token=abc&x=1");
  EXPECT_EQ(req.path, "/chat/room");
  EXPECT_EQ(req.query, "token=abc&x=1");
  ASSERT_EQ(req.headers.size(), 9u);
  EXPECT_EQ(req.headers[0], (std::pair<std::string, std::string>{"host", "server.example.com"}));
  EXPECT_EQ(req.headers[4].first, "origin");
  EXPECT_EQ(req.headers[7].first, "x-custom");
  ASSERT_NE(req.header("x-custom"), nullptr);
  EXPECT_EQ(*req.header("x-custom"), "padded value");
  EXPECT_EQ(*req.header("sec-websocket-protocol"), "chat, superchat");
  EXPECT_EQ(req.header("Host"), nullptr);  // lookups take the lower-case name
  EXPECT_EQ(req.header("missing"), nullptr);
  EXPECT_EQ(parser.accept_key(), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  // The result is final: more bytes change nothing.
  EXPECT_EQ(parser.parse(wire + "more").consumed, k_request.size());
}

TEST(WsHandshake, EveryByteSplit) {
  for (std::size_t split = 0; split < k_request.size(); ++split) {
    handshake_parser parser;
    const auto first = parser.parse(std::string_view(k_request).substr(0, split));
    ASSERT_EQ(first.type, kind::need_more) << "split at " << split;
    const auto r = parser.parse(k_request);
    ASSERT_EQ(r.type, kind::upgrade) << "split at " << split;
    EXPECT_EQ(r.consumed, k_request.size());
    EXPECT_EQ(parser.request().path, "/chat/room");
    EXPECT_EQ(parser.accept_key(), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  }
  // One byte at a time, as a slow client would send it.
  handshake_parser parser;
  for (std::size_t n = 1; n < k_request.size(); ++n) {
    ASSERT_EQ(parser.parse(std::string_view(k_request).substr(0, n)).type, kind::need_more) << n;
  }
  EXPECT_EQ(parser.parse(k_request).type, kind::upgrade);
}

TEST(WsHandshake, ToleratesBareLf) {
  std::string lf;
  for (char c : k_request) {
    if (c != '\r') {
      lf.push_back(c);
    }
  }
  for (std::size_t split = 0; split < lf.size(); ++split) {
    handshake_parser parser;
    ASSERT_EQ(parser.parse(std::string_view(lf).substr(0, split)).type, kind::need_more);
    const auto r = parser.parse(lf);
    ASSERT_EQ(r.type, kind::upgrade) << split;
    EXPECT_EQ(r.consumed, lf.size());
  }
  handshake_parser parser;
  ASSERT_EQ(parser.parse(lf).type, kind::upgrade);
  EXPECT_EQ(*parser.request().header("x-custom"), "padded value");
}

TEST(WsHandshake, TokenListsAreCaseInsensitive) {
  EXPECT_EQ(parse_once(with_header("Upgrade", "upgrade: WebSocket")).type, kind::upgrade);
  EXPECT_EQ(parse_once(with_header("Connection", "connection: keep-alive, UPGRADE")).type,
            kind::upgrade);
  EXPECT_EQ(parse_once(with_header("Upgrade", "Upgrade: h2c,websocket")).type, kind::upgrade);
}

TEST(WsHandshake, ErrorStatuses) {
  expect_error("POST /chat HTTP/1.1\r\nHost: a\r\n\r\n", 405);
  std::string v10 = k_request;
  v10.replace(v10.find("HTTP/1.1"), 8, "HTTP/1.0");
  expect_error(v10, 505);
  std::string v20 = k_request;
  v20.replace(v20.find("HTTP/1.1"), 8, "HTTP/2.0");
  expect_error(v20, 505);
  std::string v12 = k_request;
  v12.replace(v12.find("HTTP/1.1"), 8, "HTTP/1.2");
  expect_error(v12, 505);
  // Only the first Origin would be checked against an allow-list: a second one is refused.
  expect_error(
      with_header("Origin", "Origin: https://good.example\r\nOrigin: https://evil.example"), 400);
  expect_error(with_header("Origin", "Origin: https://a.example\r\norigin: https://a.example"),
               400);
  expect_error(with_header("Upgrade", ""), 426);
  expect_error(with_header("Upgrade", "Upgrade: h2c"), 426);
  expect_error(with_header("Connection", ""), 400);
  expect_error(with_header("Connection", "Connection: keep-alive"), 400);
  expect_error(with_header("Connection", "Connection: upgraded"), 400);
  expect_error(with_header("Sec-WebSocket-Version", "Sec-WebSocket-Version: 8"), 426);
  expect_error(with_header("Sec-WebSocket-Version", "Sec-WebSocket-Version: 13, 8"), 426);
  expect_error(with_header("Sec-WebSocket-Version", ""), 426);
  expect_error(with_header("Sec-WebSocket-Key", ""), 400);
  // 15 bytes, 17 bytes, bad alphabet, misplaced padding.
  expect_error(with_header("Sec-WebSocket-Key", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25j"), 400);
  expect_error(with_header("Sec-WebSocket-Key", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZTE="),
               400);
  expect_error(with_header("Sec-WebSocket-Key", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25*ZQ=="),
               400);
  expect_error(with_header("Sec-WebSocket-Key", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub2=ZQ=="), 400);
  expect_error(with_header("Host", ""), 400);
  expect_error(with_header("Host", "Host: a\r\nHost: b"), 400);
  // Malformed heads.
  expect_error("GET /chat\r\nHost: a\r\n\r\n", 400);
  expect_error("GET  /chat HTTP/1.1\r\n\r\n", 400);
  expect_error("GET /chat HTTP/1.1x\r\n\r\n", 400);
  expect_error("GET chat HTTP/1.1\r\n\r\n", 400);
  expect_error("\r\n\r\n", 400);
  expect_error(with_header("Origin", "Origin : http://example.com"), 400);
  expect_error(with_header("Origin", " folded: continuation"), 400);
  expect_error(with_header("Origin", "NoColonHere"), 400);
  expect_error(with_header("Origin", "Origin: a\rb"), 400);
}

TEST(WsHandshake, AbsoluteFormTarget) {
  std::string req = k_request;
  req.replace(4, req.find(" HTTP") - 4, "ws://server.example.com/chat?x=1");
  handshake_parser parser;
  ASSERT_EQ(parser.parse(req).type, kind::upgrade);
  EXPECT_EQ(parser.request().path, "/chat");
  EXPECT_EQ(parser.request().query, "x=1");
}

TEST(WsHandshake, HeadLimitExactAcceptedPlusOneRejected) {
  const std::size_t limit = k_request.size();
  EXPECT_EQ(parse_once(k_request, limit).type, kind::upgrade);
  const auto r = parse_once(k_request, limit - 1);
  EXPECT_EQ(r.type, kind::error);
  EXPECT_EQ(r.http_status, 431);
  // No terminator within the limit: refused at once, without waiting for the rest.
  handshake_parser parser(64);
  EXPECT_EQ(parser.parse(std::string(63, 'a')).type, kind::need_more);
  const auto early = parser.parse(std::string(64, 'a'));
  EXPECT_EQ(early.type, kind::error);
  EXPECT_EQ(early.http_status, 431);
  EXPECT_EQ(parse_once(std::string(100000, 'a'), 64).http_status, 431);
}

TEST(WsHandshake, UpgradeResponse) {
  EXPECT_EQ(ws::make_upgrade_response("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
            "HTTP/1.1 101 Switching Protocols\r\n"
            "Upgrade: websocket\r\n"
            "Connection: Upgrade\r\n"
            "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n");
}

TEST(WsHandshake, ErrorResponses) {
  const std::string r426 = ws::make_error_response(426, "use websocket");
  EXPECT_EQ(r426.rfind("HTTP/1.1 426 Upgrade Required\r\n", 0), 0u);
  EXPECT_NE(r426.find("\r\nSec-WebSocket-Version: 13\r\n"), std::string::npos);
  EXPECT_NE(r426.find("\r\nContent-Length: 13\r\n"), std::string::npos);
  EXPECT_NE(r426.find("\r\nConnection: close\r\n"), std::string::npos);
  EXPECT_EQ(r426.substr(r426.size() - 17), "\r\n\r\nuse websocket");
  const std::string r400 = ws::make_error_response(400, "");
  EXPECT_EQ(r400.rfind("HTTP/1.1 400 Bad Request\r\n", 0), 0u);
  EXPECT_EQ(r400.find("Sec-WebSocket-Version"), std::string::npos);
  EXPECT_NE(r400.find("\r\nContent-Length: 0\r\n"), std::string::npos);
  EXPECT_EQ(r400.substr(r400.size() - 4), "\r\n\r\n");
  EXPECT_EQ(ws::make_error_response(401, "x").rfind("HTTP/1.1 401 Unauthorized\r\n", 0), 0u);
  EXPECT_NE(ws::make_error_response(405, "").find("\r\nAllow: GET\r\n"), std::string::npos);
}

TEST(WsHandshake, ParsesCookies) {
  handshake_parser parser;
  ASSERT_EQ(parser.parse(k_request).type, kind::upgrade);
  const auto cookies = ws::parse_cookies(*parser.request().header("cookie"));
  EXPECT_EQ(cookies, (std::vector<std::pair<std::string, std::string>>{{"session", "s1"},
                                                                       {"theme", "dark"}}));
  EXPECT_EQ(ws::parse_cookies(" a=1;b = 2 ;; junk; =nameless; c=; d=x=y"),
            (std::vector<std::pair<std::string, std::string>>{
                {"a", "1"}, {"b", "2"}, {"c", ""}, {"d", "x=y"}}));
  EXPECT_TRUE(ws::parse_cookies("").empty());
}

}  // namespace
}  // namespace gwx::codec
