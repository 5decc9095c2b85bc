#include "common/codec/ws_handshake.hpp"

#include <openssl/evp.h>

#include <algorithm>

namespace gwx::codec::ws {

namespace {

constexpr std::string_view k_guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
constexpr std::size_t k_key_chars = 24;  // base64 of 16 bytes
constexpr std::size_t k_key_bytes = 16;

char lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(),
                                            [](char x, char y) { return lower(x) == lower(y); });
}

bool is_ows(char c) {
  return c == ' ' || c == '\t';
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_ows(s.front())) {
    s.remove_prefix(1);
  }
  while (!s.empty() && is_ows(s.back())) {
    s.remove_suffix(1);
  }
  return s;
}

/// RFC 9110 tchar.
bool is_tchar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
    return true;
  }
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool is_token(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), is_tchar);
}

/// Control characters other than HTAB are never allowed in a field value or target.
bool is_ctl(char c) {
  const auto u = static_cast<unsigned char>(c);
  return (u < 0x20 && c != '\t') || u == 0x7f;
}

/// True when the comma-separated list `value` holds `token` (case-insensitive).
bool has_token(std::string_view value, std::string_view token) {
  while (!value.empty()) {
    const auto comma = value.find(',');
    if (iequals(trim(value.substr(0, comma)), token)) {
      return true;
    }
    if (comma == std::string_view::npos) {
      break;
    }
    value.remove_prefix(comma + 1);
  }
  return false;
}

bool is_valid_key(std::string_view key) {
  if (key.size() != k_key_chars || key.substr(k_key_chars - 2) != "==" ||
      key.substr(0, k_key_chars - 2).find('=') != std::string_view::npos) {
    return false;
  }
  unsigned char decoded[k_key_chars];
  // EVP_DecodeBlock counts the padding as data: 24 characters always decode to 18 bytes.
  const int n = EVP_DecodeBlock(decoded, reinterpret_cast<const unsigned char*>(key.data()),
                                static_cast<int>(key.size()));
  return n == static_cast<int>(k_key_bytes + 2);
}

std::size_t count_headers(const http_request& req, std::string_view name) {
  return static_cast<std::size_t>(std::count_if(req.headers.begin(), req.headers.end(),
                                                [&](const auto& h) { return h.first == name; }));
}

handshake_result error(int status, const char* reason) {
  handshake_result r;
  r.type = handshake_result::kind::error;
  r.http_status = status;
  r.reason = reason;
  return r;
}

/// Splits an origin-form or absolute-form target into path and query; false for other forms.
bool split_target(std::string_view target, std::string& path, std::string& query) {
  if (target.empty() || !std::none_of(target.begin(), target.end(), is_ctl)) {
    return false;
  }
  if (target.front() != '/') {
    const auto scheme_end = target.find("://");
    if (scheme_end == std::string_view::npos || scheme_end == 0) {
      return false;
    }
    target.remove_prefix(scheme_end + 3);
    const auto authority_end = target.find_first_of("/?");
    target =
        authority_end == std::string_view::npos ? std::string_view{} : target.substr(authority_end);
  }
  const auto q = target.find('?');
  path = target.substr(0, q);
  if (path.empty()) {
    path = "/";
  }
  query = q == std::string_view::npos ? std::string_view{} : target.substr(q + 1);
  return true;
}

const char* status_text(int status) {
  switch (status) {
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 426:
      return "Upgrade Required";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Error";
  }
}

}  // namespace

const std::string* http_request::header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (key == name) {
      return &value;
    }
  }
  return nullptr;
}

handshake_parser::handshake_parser(std::size_t max_head) : max_head_(max_head) {}

handshake_result handshake_parser::parse(std::string_view in) {
  if (result_.type != handshake_result::kind::need_more) {
    return result_;
  }
  // The head ends at an empty line: "\n\n" or "\n\r\n". Only the first max_head bytes can hold it.
  const std::string_view window = in.substr(0, max_head_);
  std::size_t end = 0;
  std::size_t i = scanned_;
  for (; i < window.size(); ++i) {
    if (window[i] != '\n') {
      continue;
    }
    if (i + 1 < window.size() && window[i + 1] == '\n') {
      end = i + 2;
      break;
    }
    if (i + 1 < window.size() && window[i + 1] == '\r') {
      if (i + 2 < window.size() && window[i + 2] == '\n') {
        end = i + 3;
        break;
      }
      if (i + 2 >= window.size()) {
        break;  // undecided; look again at this '\n' next time
      }
      continue;
    }
    if (i + 1 >= window.size()) {
      break;
    }
  }
  if (end == 0) {
    if (in.size() >= max_head_) {
      result_ = error(431, "request head larger than the limit");
      return result_;
    }
    scanned_ = i;
    return result_;
  }
  result_ = finish(in.substr(0, end));
  if (result_.type == handshake_result::kind::upgrade) {
    result_.consumed = end;
  }
  return result_;
}

handshake_result handshake_parser::finish(std::string_view head) {
  // Split into lines without their terminators; the last one is the empty line.
  std::vector<std::string_view> lines;
  while (!head.empty()) {
    const auto nl = head.find('\n');
    auto line = head.substr(0, nl);
    head.remove_prefix(nl + 1);
    if (!line.empty() && line.back() == '\r') {
      line.remove_suffix(1);
    }
    if (line.find('\r') != std::string_view::npos) {
      return error(400, "bare CR in the request head");
    }
    lines.push_back(line);
  }
  lines.pop_back();
  if (lines.empty()) {
    return error(400, "empty request line");
  }

  const std::string_view request_line = lines.front();
  const auto sp1 = request_line.find(' ');
  const auto sp2 = sp1 == std::string_view::npos ? sp1 : request_line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos) {
    return error(400, "malformed request line");
  }
  const auto method = request_line.substr(0, sp1);
  const auto target = request_line.substr(sp1 + 1, sp2 - sp1 - 1);
  const auto version = request_line.substr(sp2 + 1);
  if (!is_token(method)) {
    return error(400, "malformed method");
  }
  if (version.size() != 8 || version.substr(0, 5) != "HTTP/" || version[5] < '0' ||
      version[5] > '9' || version[6] != '.' || version[7] < '0' || version[7] > '9') {
    return error(400, "malformed HTTP version");
  }
  request_.method = method;
  request_.target = target;
  if (!split_target(target, request_.path, request_.query)) {
    return error(400, "malformed request target");
  }
  if (method != "GET") {
    return error(405, "method is not GET");
  }
  // An upgrade is HTTP/1.1 (RFC 6455 4.1); HTTP/2 and later upgrade differently (RFC 8441).
  if (version != "HTTP/1.1") {
    return error(505, "HTTP version is not 1.1");
  }

  for (std::size_t n = 1; n < lines.size(); ++n) {
    const std::string_view line = lines[n];
    if (!line.empty() && is_ows(line.front())) {
      return error(400, "obsolete header line folding");
    }
    const auto colon = line.find(':');
    if (colon == std::string_view::npos || !is_token(line.substr(0, colon))) {
      return error(400, "malformed header line");
    }
    const auto value = trim(line.substr(colon + 1));
    if (std::any_of(value.begin(), value.end(), is_ctl)) {
      return error(400, "control character in a header value");
    }
    std::string name(line.substr(0, colon));
    std::transform(name.begin(), name.end(), name.begin(), lower);
    request_.headers.emplace_back(std::move(name), std::string(value));
  }

  const std::string* upgrade = request_.header("upgrade");
  if (upgrade == nullptr || !has_token(*upgrade, "websocket")) {
    return error(426, "not a WebSocket upgrade request");
  }
  const std::string* connection = request_.header("connection");
  if (connection == nullptr || !has_token(*connection, "upgrade")) {
    return error(400, "Connection header lacks the upgrade token");
  }
  const std::string* ws_version = request_.header("sec-websocket-version");
  if (ws_version == nullptr || *ws_version != "13" ||
      count_headers(request_, "sec-websocket-version") != 1) {
    return error(426, "unsupported Sec-WebSocket-Version");
  }
  const std::string* key = request_.header("sec-websocket-key");
  if (key == nullptr || count_headers(request_, "sec-websocket-key") != 1 || !is_valid_key(*key)) {
    return error(400, "missing or malformed Sec-WebSocket-Key");
  }
  if (count_headers(request_, "host") != 1) {
    return error(400, "missing or repeated Host header");
  }
  // The Origin allow-list checks one value: a second one would go unchecked.
  if (count_headers(request_, "origin") > 1) {
    return error(400, "repeated Origin header");
  }
  accept_key_ = make_accept_key(*key);
  handshake_result r;
  r.type = handshake_result::kind::upgrade;
  return r;
}

std::string make_accept_key(std::string_view client_key) {
  std::string input;
  input.reserve(client_key.size() + k_guid.size());
  input.append(client_key);
  input.append(k_guid);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_size = 0;
  if (EVP_Digest(input.data(), input.size(), digest, &digest_size, EVP_sha1(), nullptr) != 1) {
    return {};
  }
  unsigned char encoded[4 * ((EVP_MAX_MD_SIZE + 2) / 3) + 1];
  const int n = EVP_EncodeBlock(encoded, digest, static_cast<int>(digest_size));
  return std::string(reinterpret_cast<const char*>(encoded), static_cast<std::size_t>(n));
}

std::string make_upgrade_response(std::string_view accept_key) {
  std::string out =
      "HTTP/1.1 101 Switching Protocols\r\n"
      "Upgrade: websocket\r\n"
      "Connection: Upgrade\r\n"
      "Sec-WebSocket-Accept: ";
  out.append(accept_key);
  out.append("\r\n\r\n");
  return out;
}

std::string make_error_response(int status, std::string_view body) {
  std::string out = "HTTP/1.1 ";
  out.append(std::to_string(status));
  out.push_back(' ');
  out.append(status_text(status));
  out.append("\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ");
  out.append(std::to_string(body.size()));
  out.append("\r\nConnection: close\r\n");
  if (status == 426) {
    out.append("Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n");
  } else if (status == 405) {
    out.append("Allow: GET\r\n");
  }
  out.append("\r\n");
  out.append(body);
  return out;
}

std::vector<std::pair<std::string, std::string>> parse_cookies(std::string_view header) {
  std::vector<std::pair<std::string, std::string>> cookies;
  while (!header.empty()) {
    const auto semi = header.find(';');
    const auto pair = trim(header.substr(0, semi));
    header.remove_prefix(semi == std::string_view::npos ? header.size() : semi + 1);
    const auto eq = pair.find('=');
    if (eq == std::string_view::npos) {
      continue;
    }
    const auto name = trim(pair.substr(0, eq));
    auto value = trim(pair.substr(eq + 1));
    if (name.empty()) {
      continue;
    }
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"') {
      value = value.substr(1, value.size() - 2);
    }
    cookies.emplace_back(std::string(name), std::string(value));
  }
  return cookies;
}

}  // namespace gwx::codec::ws
