// libFuzzer target for the metrics endpoint's request-head parser (common/metrics/http_codec).
// Input: byte 0 picks the head limit and the read size; the rest is what the client sent. The
// exposer parses everything received so far after each read and acts on the first answer that
// is not "need more": that answer must not depend on how the bytes were split, and a complete
// head must be well-formed and lie inside the bytes.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "common/metrics/http_codec.hpp"

namespace {

using gwx::metrics::http_parse_result;
using gwx::metrics::parse_request_head;
using state = http_parse_result::status;

void check(bool ok) {
  if (!ok) {
    std::abort();
  }
}

// What the exposer gets when the client's bytes arrive `chunk` at a time.
http_parse_result run(std::string_view in, std::size_t max_head, std::size_t chunk) {
  for (std::size_t n = std::min(chunk, in.size());; n = std::min(n + chunk, in.size())) {
    auto r = parse_request_head(in.substr(0, n), max_head);
    if (r.state != state::need_more || n == in.size()) {
      return r;
    }
  }
}

bool inside(std::string_view part, std::string_view whole) {
  return part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) {
    return 0;
  }
  const std::size_t max_head = std::size_t{data[0] & 0x0fu} * 64 + 16;
  const std::size_t chunk = static_cast<std::size_t>(data[0] >> 4) + 1;
  const std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);

  const auto whole = parse_request_head(in, max_head);
  const auto pieces = run(in, max_head, chunk);
  check(whole.state == pieces.state);
  switch (whole.state) {
    case state::complete:
      check(whole.consumed == pieces.consumed);
      check(whole.consumed > 0 && whole.consumed <= in.size() && whole.consumed <= max_head);
      check(whole.head.method == pieces.head.method && whole.head.target == pieces.head.target);
      check(inside(whole.head.method, in) && inside(whole.head.target, in));
      // The path is part of the target, or "/" for an absolute-form target without one.
      check(inside(whole.head.path, whole.head.target) || whole.head.path == "/");
      check(!whole.head.method.empty() && !whole.head.path.empty());
      check(in.substr(0, whole.consumed).ends_with("\n\n") ||
            in.substr(0, whole.consumed).ends_with("\n\r\n"));
      break;
    case state::error:
      check(whole.error_status == 400 || whole.error_status == 431 || whole.error_status == 505);
      check(pieces.error_status == 400 || pieces.error_status == 431 || pieces.error_status == 505);
      check(!whole.error.empty());
      check(!gwx::metrics::make_http_response(whole.error_status, "text/plain", whole.error, true)
                 .empty());
      break;
    case state::need_more:
      check(in.size() < max_head);
      break;
  }
  return 0;
}
