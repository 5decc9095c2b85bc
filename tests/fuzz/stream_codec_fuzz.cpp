// libFuzzer target for the TCP framings: codec::line (tcp+line) and codec::length_prefix
// (tcp+frame). Input: byte 0 picks the framing (top bit) and the message limit, byte 1 the chunk
// size the stream arrives in; the rest is the stream. Checks that decoding as the gateway does it
// (bytes arrive in chunks, an unfinished tail is kept) gives the same messages as decoding the
// whole stream at once, that no message passes the limit, and that messages re-encode to the
// bytes they were decoded from.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "common/codec/length_prefix.hpp"
#include "common/codec/line.hpp"

namespace {

using gwx::codec::decode_result;
using gwx::codec::decode_status;

void check(bool ok) {
  if (!ok) {
    std::abort();
  }
}

struct outcome {
  std::vector<std::string> messages;
  bool error = false;
};

decode_result decode(bool lines, std::string_view in, std::size_t max) {
  return lines ? gwx::codec::line::decode(in, max) : gwx::codec::length_prefix::decode(in, max);
}

// Decodes what `pending` holds; returns the bytes used, appends messages, stops at an error.
std::size_t drain(bool lines, std::string_view pending, std::size_t max, outcome& out) {
  std::size_t used = 0;
  while (!out.error) {
    const auto r = decode(lines, pending.substr(used), max);
    if (r.status == decode_status::need_more) {
      check(r.consumed == 0);
      break;
    }
    if (r.status == decode_status::error) {
      check(r.reason != nullptr && *r.reason != '\0');
      out.error = true;
      break;
    }
    check(r.consumed > 0 && r.consumed <= pending.size() - used);
    check(r.payload.size() <= max);
    // The payload lies inside the bytes it was decoded from.
    check(r.payload.data() >= pending.data() + used &&
          r.payload.data() + r.payload.size() <= pending.data() + used + r.consumed);
    out.messages.emplace_back(r.payload);
    used += r.consumed;
  }
  return used;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) {
    return 0;
  }
  const bool lines = (data[0] & 0x80u) != 0;
  const std::size_t max = std::size_t{data[0] & 0x7fu} * 3 + 1;
  const std::size_t chunk = std::size_t{data[1]} + 1;
  const std::string_view in(reinterpret_cast<const char*>(data) + 2, size - 2);

  outcome whole;
  const std::size_t whole_used = drain(lines, in, max, whole);

  outcome pieces;
  std::string pending;
  std::size_t pieces_used = 0;
  for (std::size_t off = 0; off < in.size() && !pieces.error; off += chunk) {
    pending.append(in.substr(off, chunk));
    const std::size_t used = drain(lines, pending, max, pieces);
    pending.erase(0, used);
    pieces_used += used;
  }
  check(whole.error == pieces.error);
  check(whole.messages == pieces.messages);
  if (!whole.error) {
    check(whole_used == pieces_used);
    // What is left over is an unfinished message: decoding it alone asks for more.
    check(decode(lines, in.substr(whole_used), max).status == decode_status::need_more);
  }

  // Every message re-encodes; line payloads never hold the terminator. A line payload ending in
  // CR is the one thing line framing cannot carry back (the CR would be taken for the
  // terminator's): the gateway refuses to send such a message, so it is left out here.
  std::string encoded;
  std::vector<std::string> expected;
  for (const auto& m : whole.messages) {
    if (lines) {
      check(m.find('\n') == std::string::npos);
      if (!m.empty() && m.back() == '\r') {
        continue;
      }
      gwx::codec::line::encode(encoded, m);
    } else {
      gwx::codec::length_prefix::encode(encoded, m);
    }
    expected.push_back(m);
  }
  outcome again;
  check(drain(lines, encoded, max, again) == encoded.size());
  check(!again.error && again.messages == expected);
  return 0;
}
