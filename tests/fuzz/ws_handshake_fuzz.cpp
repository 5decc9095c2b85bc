// libFuzzer target for ws::handshake_parser. Input: byte 0 picks the head limit and the chunk
// size; the rest is what the client sent. Checks that feeding in chunks and all at once agree
// and that an accepted upgrade is well-formed.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "common/codec/ws_handshake.hpp"

namespace {

using gwx::codec::ws::handshake_parser;
using gwx::codec::ws::handshake_result;
using kind = handshake_result::kind;

void check(bool ok) {
  if (!ok) {
    std::abort();
  }
}

handshake_result run(handshake_parser& parser, std::string_view in, std::size_t chunk) {
  handshake_result r;
  for (std::size_t n = std::min(chunk, in.size());; n = std::min(n + chunk, in.size())) {
    r = parser.parse(in.substr(0, n));
    if (r.type != kind::need_more || n == in.size()) {
      return r;
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) {
    return 0;
  }
  const std::size_t max_head = std::size_t{data[0] & 0x0fu} * 64 + 16;
  const std::size_t chunk = static_cast<std::size_t>(data[0] >> 4) + 1;
  const std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);

  handshake_parser whole(max_head);
  const auto a = whole.parse(in);
  handshake_parser pieces(max_head);
  const auto b = run(pieces, in, chunk);
  check(a.type == b.type && a.http_status == b.http_status && a.consumed == b.consumed);

  if (a.type == kind::upgrade) {
    check(a.consumed > 0 && a.consumed <= in.size() && a.consumed <= max_head);
    check(whole.accept_key().size() == 28);
    check(whole.accept_key() == pieces.accept_key());
    const auto& req = whole.request();
    check(req.method == "GET" && !req.path.empty() && req.path.front() == '/');
    check(req.headers == pieces.request().headers);
    for (const auto& [name, value] : req.headers) {
      for (char c : name) {
        check(!(c >= 'A' && c <= 'Z'));
      }
      if (name == "cookie") {
        for (const auto& [cookie, cookie_value] : gwx::codec::ws::parse_cookies(value)) {
          check(!cookie.empty());
        }
      }
    }
    check(!gwx::codec::ws::make_upgrade_response(whole.accept_key()).empty());
  } else if (a.type == kind::error) {
    check(a.http_status == 400 || a.http_status == 405 || a.http_status == 426 ||
          a.http_status == 431 || a.http_status == 505);
    check(!gwx::codec::ws::make_error_response(a.http_status, a.reason).empty());
  } else {
    check(in.size() < max_head);
  }
  return 0;
}
