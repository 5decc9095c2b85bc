#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace gwx::codec::ws {

/// A parsed HTTP/1.1 request head.
struct http_request {
  std::string method;
  std::string target;  ///< as sent
  std::string path;    ///< target up to '?' (the authority of an absolute-form target dropped)
  std::string query;   ///< target after '?', without it
  /// Header names lower-cased, values trimmed, in the order received.
  std::vector<std::pair<std::string, std::string>> headers;
  /// First header value with this lower-case name, or nullptr.
  const std::string* header(std::string_view name) const;
};

/// Outcome of offering buffered bytes to the handshake parser.
struct handshake_result {
  enum class kind { need_more, upgrade, error };
  kind type = kind::need_more;
  std::size_t consumed = 0;  ///< upgrade: length of the request head; later bytes are frames
  /// error: 400 bad request, 405 method, 426 upgrade required / wrong version, 431 head too
  /// large, 505 HTTP version.
  int http_status = 0;
  const char* reason = "";  ///< error: human-readable reason (static string)
};

/// Sans-I/O parser and validator of a WebSocket upgrade request (RFC 6455 4.2.1) for one
/// connection. The caller passes all bytes received so far on every call until the result is
/// not `need_more`; after that every call returns the same result. Thread-compatible.
class handshake_parser {
 public:
  /// `max_head` bounds the request head, request line to the empty line inclusive.
  explicit handshake_parser(std::size_t max_head = 8192);

  /// Parses the request head from the front of `in` (CRLF line endings; bare LF tolerated). On
  /// upgrade, `request()` holds it and `accept_key()` is computed.
  handshake_result parse(std::string_view in);
  /// The request, complete once `parse` returned upgrade.
  const http_request& request() const { return request_; }
  /// Sec-WebSocket-Accept for the request's key, once `parse` returned upgrade.
  const std::string& accept_key() const { return accept_key_; }

 private:
  handshake_result finish(std::string_view head);

  std::size_t max_head_;
  std::size_t scanned_ = 0;  // bytes known to hold no end of head
  handshake_result result_;  // final once not need_more
  http_request request_;
  std::string accept_key_;
};

/// Sec-WebSocket-Accept for a key: base64(SHA-1(key + RFC 6455 GUID)).
std::string make_accept_key(std::string_view client_key);

/// "HTTP/1.1 101 Switching Protocols" with Upgrade, Connection and Sec-WebSocket-Accept.
std::string make_upgrade_response(std::string_view accept_key);

/// A complete small HTTP error response with Content-Length and "Connection: close"; 426 adds
/// "Sec-WebSocket-Version: 13", 405 adds "Allow: GET".
std::string make_error_response(int status, std::string_view body);

/// Parses a Cookie header into name/value pairs (surrounding quotes removed, empty names skipped).
std::vector<std::pair<std::string, std::string>> parse_cookies(std::string_view header);

}  // namespace gwx::codec::ws
