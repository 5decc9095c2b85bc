#pragma once

#include <cstddef>
#include <string>
#include <string_view>

// The little HTTP/1.x the metrics endpoint needs, sans-I/O: parse a request head from the bytes
// received so far, build a complete response. No sockets, no state: safe from any thread.
namespace gwx::metrics {

/// The request line of a complete request head. Views into the bytes given to the parser.
struct http_request_head {
  std::string_view method;
  std::string_view target;  // as sent: path and query
  std::string_view path;    // target without the query
};

/// What parse_request_head() made of the bytes so far.
struct http_parse_result {
  enum class status { need_more, complete, error };
  status state = status::need_more;
  /// When complete: the request line.
  http_request_head head;
  /// When complete: the length of the head, blank line included.
  std::size_t consumed = 0;
  /// When error: the HTTP status to answer with (400, 431, 505) and why.
  int error_status = 0;
  std::string_view error;
};

/// Parses a request head (request line and header lines, up to the blank line; CRLF or bare LF
/// line ends; leading blank lines skipped). Answers `error` as soon as the bytes cannot become
/// a valid head, 431 once `max_head` bytes hold no complete head. Headers are checked for form
/// but not returned: the endpoint needs none. A body, if any, is not read.
http_parse_result parse_request_head(std::string_view bytes, std::size_t max_head);

/// The reason phrase of the statuses the endpoint uses ("Unknown" for others).
std::string_view http_reason(int status);

/// A complete HTTP/1.1 response that closes the connection: status line, Content-Type,
/// Content-Length, `Connection: close`, `extra_headers` (each line ending in CRLF), then the body
/// unless `include_body` is false (a HEAD request).
std::string make_http_response(int status, std::string_view content_type, std::string_view body,
                               bool include_body, std::string_view extra_headers = {});

}  // namespace gwx::metrics
