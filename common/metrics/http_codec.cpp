#include "common/metrics/http_codec.hpp"

namespace gwx::metrics {
namespace {

constexpr std::size_t k_max_method = 16;

// RFC 9110 tchar.
bool is_token_char(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
    return true;
  }
  switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '.':
    case '^':
    case '_':
    case '`':
    case '|':
    case '~':
      return true;
    default:
      return false;
  }
}

bool is_token(std::string_view text) {
  if (text.empty()) {
    return false;
  }
  for (const char c : text) {
    if (!is_token_char(c)) {
      return false;
    }
  }
  return true;
}

// Visible ASCII, as allowed in a request target.
bool is_target(std::string_view text) {
  if (text.empty()) {
    return false;
  }
  for (const char c : text) {
    if (c <= ' ' || c >= 127) {
      return false;
    }
  }
  return true;
}

http_parse_result fail(int status, std::string_view why) {
  http_parse_result result;
  result.state = http_parse_result::status::error;
  result.error_status = status;
  result.error = why;
  return result;
}

// Strips the line end (LF, and a CR before it).
std::string_view without_cr(std::string_view line) {
  if (!line.empty() && line.back() == '\r') {
    line.remove_suffix(1);
  }
  return line;
}

// Checks one request line; on success fills `head`.
http_parse_result check_request_line(std::string_view line, http_request_head& head) {
  const auto first_space = line.find(' ');
  const auto last_space = line.rfind(' ');
  if (first_space == std::string_view::npos || first_space == last_space) {
    return fail(400, "malformed request line");
  }
  const auto method = line.substr(0, first_space);
  const auto target = line.substr(first_space + 1, last_space - first_space - 1);
  const auto version = line.substr(last_space + 1);
  if (method.size() > k_max_method || !is_token(method)) {
    return fail(400, "malformed method");
  }
  if (!is_target(target) || (target.front() != '/' && target != "*" &&
                             !target.starts_with("http://") && !target.starts_with("https://"))) {
    return fail(400, "malformed request target");
  }
  if (!version.starts_with("HTTP/")) {
    return fail(400, "malformed HTTP version");
  }
  if (version != "HTTP/1.1" && version != "HTTP/1.0") {
    return fail(505, "only HTTP/1.0 and HTTP/1.1 are served");
  }
  head.method = method;
  head.target = target;
  // An absolute-form target ("http://host/path") is routed by its path.
  auto path = target;
  if (!path.starts_with('/') && path != "*") {
    const auto scheme_end = path.find("://");
    const auto slash = path.find('/', scheme_end + 3);
    path = slash == std::string_view::npos ? std::string_view("/") : path.substr(slash);
  }
  head.path = path.substr(0, path.find('?'));
  return {};
}

bool valid_header_line(std::string_view line) {
  const auto colon = line.find(':');
  if (colon == std::string_view::npos || !is_token(line.substr(0, colon))) {
    return false;  // also rejects obsolete line folding (a leading space)
  }
  for (const char c : line.substr(colon + 1)) {
    const auto u = static_cast<unsigned char>(c);
    if ((u < 0x20 && c != '\t') || u == 0x7f) {
      return false;
    }
  }
  return true;
}

}  // namespace

http_parse_result parse_request_head(std::string_view bytes, std::size_t max_head) {
  std::size_t pos = 0;
  // RFC 9112 2.2: ignore at least one empty line before the request line.
  while (pos < bytes.size() && (bytes[pos] == '\r' || bytes[pos] == '\n')) {
    ++pos;
  }
  http_request_head head;
  bool have_request_line = false;
  while (true) {
    const auto end = bytes.find('\n', pos);
    if (end == std::string_view::npos || end >= max_head) {
      if (bytes.size() >= max_head) {
        return fail(431, "request head too large");
      }
      // Reject a request line that is already wrong before it is complete.
      if (!have_request_line) {
        const auto partial = bytes.substr(pos);
        const auto space = partial.find(' ');
        const auto method = partial.substr(0, space);
        if (method.size() > k_max_method || (!method.empty() && !is_token(method))) {
          return fail(400, "malformed method");
        }
      }
      return {};
    }
    const auto line = without_cr(bytes.substr(pos, end - pos));
    pos = end + 1;
    if (!have_request_line) {
      if (auto checked = check_request_line(line, head);
          checked.state == http_parse_result::status::error) {
        return checked;
      }
      have_request_line = true;
      continue;
    }
    if (line.empty()) {
      http_parse_result result;
      result.state = http_parse_result::status::complete;
      result.head = head;
      result.consumed = pos;
      return result;
    }
    if (!valid_header_line(line)) {
      return fail(400, "malformed header line");
    }
  }
}

std::string_view http_reason(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 431:
      return "Request Header Fields Too Large";
    case 503:
      return "Service Unavailable";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Unknown";
  }
}

std::string make_http_response(int status, std::string_view content_type, std::string_view body,
                               bool include_body, std::string_view extra_headers) {
  std::string out;
  out.reserve(160 + extra_headers.size() + (include_body ? body.size() : 0));
  out += "HTTP/1.1 ";
  out += std::to_string(status);
  out += ' ';
  out += http_reason(status);
  out += "\r\nContent-Type: ";
  out += content_type;
  out += "\r\nContent-Length: ";
  out += std::to_string(body.size());
  out += "\r\nConnection: close\r\n";
  out += extra_headers;
  out += "\r\n";
  if (include_body) {
    out += body;
  }
  return out;
}

}  // namespace gwx::metrics
