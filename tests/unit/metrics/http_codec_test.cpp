#include "common/metrics/http_codec.hpp"

#include <gtest/gtest.h>

#include <string>

namespace gwx::metrics {
namespace {

using status = http_parse_result::status;

const std::string k_prometheus_request =
    "GET /metrics HTTP/1.1\r\n"
    "Host: 127.0.0.1:9100\r\n"
    "User-Agent: Prometheus/2.42.0\r\n"
    "Accept: "
    "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1\r\n"
    "Accept-Encoding: gzip\r\n"
    "X-Prometheus-Scrape-Timeout-Seconds: 10\r\n"
    "\r\n";

TEST(MetricsHttpCodec, ParsesAPrometheusScrape) {
  const auto result = parse_request_head(k_prometheus_request, 8192);
  ASSERT_EQ(result.state, status::complete);
  EXPECT_EQ(result.head.method, "GET");
  EXPECT_EQ(result.head.target, "/metrics");
  EXPECT_EQ(result.head.path, "/metrics");
  EXPECT_EQ(result.consumed, k_prometheus_request.size());
}

TEST(MetricsHttpCodec, EverySplitNeedsMoreUntilTheBlankLine) {
  for (std::size_t split = 0; split < k_prometheus_request.size(); ++split) {
    const auto result = parse_request_head(k_prometheus_request.substr(0, split), 8192);
    EXPECT_EQ(result.state, status::need_more) << "split at " << split;
  }
}

TEST(MetricsHttpCodec, BytesAfterTheHeadAreNotConsumed) {
  const auto two = k_prometheus_request + "GET / HTTP/1.1\r\n\r\n";
  const auto result = parse_request_head(two, 8192);
  ASSERT_EQ(result.state, status::complete);
  EXPECT_EQ(result.consumed, k_prometheus_request.size());
}

TEST(MetricsHttpCodec, BareLineFeedsAndLeadingBlankLines) {
  const auto result = parse_request_head("\r\n\nHEAD /metrics?x=1 HTTP/1.0\nHost: a\n\n", 8192);
  ASSERT_EQ(result.state, status::complete);
  EXPECT_EQ(result.head.method, "HEAD");
  EXPECT_EQ(result.head.target, "/metrics?x=1");
  EXPECT_EQ(result.head.path, "/metrics");
}

TEST(MetricsHttpCodec, AbsoluteFormTargetIsRoutedByPath) {
  auto result = parse_request_head("GET http://h:9/metrics?a HTTP/1.1\r\n\r\n", 8192);
  ASSERT_EQ(result.state, status::complete);
  EXPECT_EQ(result.head.path, "/metrics");
  result = parse_request_head("GET http://h:9 HTTP/1.1\r\n\r\n", 8192);
  ASSERT_EQ(result.state, status::complete);
  EXPECT_EQ(result.head.path, "/");
}

void expect_error(const std::string& bytes, int http_status) {
  const auto result = parse_request_head(bytes, 8192);
  EXPECT_EQ(result.state, status::error) << bytes;
  EXPECT_EQ(result.error_status, http_status) << bytes;
  EXPECT_FALSE(result.error.empty());
}

TEST(MetricsHttpCodec, MalformedRequestsAreRejected) {
  expect_error("GET /metrics\r\n\r\n", 400);               // no version
  expect_error("GET  /metrics HTTP/1.1\r\n\r\n", 400);     // empty target
  expect_error("GET metrics HTTP/1.1\r\n\r\n", 400);       // not a path
  expect_error("G(T /metrics HTTP/1.1\r\n\r\n", 400);      // not a token
  expect_error("GET /met\x01rics HTTP/1.1\r\n\r\n", 400);  // control byte
  expect_error("GET /metrics FTP/1.0\r\n\r\n", 400);
  expect_error("GET /metrics HTTP/2.0\r\n\r\n", 505);
  expect_error("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505);  // HTTP/2 prior knowledge
  expect_error("GET /metrics HTTP/1.1\r\nNoColon\r\n\r\n", 400);
  expect_error("GET /metrics HTTP/1.1\r\nBad Name: x\r\n\r\n", 400);
  expect_error("GET /metrics HTTP/1.1\r\nA: b\r\n folded\r\n\r\n", 400);
  expect_error("GET /metrics HTTP/1.1\r\nA: b\x7f\r\n\r\n", 400);
}

TEST(MetricsHttpCodec, BinaryGarbageIsRejectedBeforeALineEnds) {
  // A TLS ClientHello sent to the plain-text port: no newline will ever come.
  expect_error(std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11), 400);
  expect_error("ABCDEFGHIJKLMNOPQRSTUVWXYZ /", 400);  // method longer than any real one
}

TEST(MetricsHttpCodec, HeadSizeLimitIsExact) {
  constexpr std::size_t k_max = 256;
  const std::string start = "GET /metrics HTTP/1.1\r\nX-Pad: ";
  const std::string end = "\r\n\r\n";
  const std::string exact = start + std::string(k_max - start.size() - end.size(), 'a') + end;
  ASSERT_EQ(exact.size(), k_max);
  EXPECT_EQ(parse_request_head(exact, k_max).state, status::complete);
  const std::string over = start + std::string(k_max + 1 - start.size() - end.size(), 'a') + end;
  const auto result = parse_request_head(over, k_max);
  EXPECT_EQ(result.state, status::error);
  EXPECT_EQ(result.error_status, 431);
  // Without any line end the limit applies as soon as it is reached.
  EXPECT_EQ(parse_request_head("GET /" + std::string(k_max - 6, 'a'), k_max).state,
            status::need_more);
  EXPECT_EQ(parse_request_head("GET /" + std::string(k_max - 5, 'a'), k_max).error_status, 431);
}

TEST(MetricsHttpCodec, Responses) {
  EXPECT_EQ(make_http_response(200, "text/plain", "abc", true),
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n"
            "Connection: close\r\n\r\nabc");
  EXPECT_EQ(make_http_response(405, "text/plain", "no\n", false, "Allow: GET, HEAD\r\n"),
            "HTTP/1.1 405 Method Not Allowed\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n"
            "Connection: close\r\nAllow: GET, HEAD\r\n\r\n");
  EXPECT_EQ(http_reason(404), "Not Found");
  EXPECT_EQ(http_reason(431), "Request Header Fields Too Large");
}

}  // namespace
}  // namespace gwx::metrics
