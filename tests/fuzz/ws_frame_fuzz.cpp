// libFuzzer target for ws::frame_parser. Input: byte 0 picks the role and the message limit,
// byte 1 the chunk size the wire is fed in; the rest is the wire. Checks that feeding in chunks
// and all at once agree, that every event obeys RFC 6455, and that messages re-encode.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "common/codec/utf8.hpp"
#include "common/codec/ws_frame.hpp"

namespace {

using gwx::codec::ws::frame_event;
using kind = frame_event::kind;

struct event {
  kind type;
  bool binary;
  std::string data;
  std::uint16_t code;

  bool operator==(const event&) const = default;
};

void check(bool ok) {
  if (!ok) {
    std::abort();
  }
}

void check_event(const frame_event& ev, std::size_t max) {
  switch (ev.type) {
    case kind::message:
      check(ev.data.size() <= max);
      check(ev.binary || gwx::codec::is_valid_utf8(ev.data));
      break;
    case kind::ping:
    case kind::pong:
      check(ev.data.size() <= gwx::codec::ws::k_max_control_payload);
      break;
    case kind::close:
      check(ev.close_code == gwx::codec::ws::k_close_no_status ||
            gwx::codec::ws::is_valid_close_code(ev.close_code));
      check(gwx::codec::is_valid_utf8(ev.data));
      break;
    case kind::error:
      check(ev.close_code == gwx::codec::ws::k_close_protocol_error ||
            ev.close_code == gwx::codec::ws::k_close_invalid_payload ||
            ev.close_code == gwx::codec::ws::k_close_too_big);
      check(ev.reason != nullptr && ev.reason[0] != '\0');
      break;
    case kind::need_more:
      break;
  }
}

std::vector<event> run(const std::string& wire, std::size_t max, gwx::codec::ws::role side,
                       std::size_t chunk) {
  gwx::codec::ws::frame_parser parser(max, side);
  std::vector<event> got;
  std::string buf;
  std::size_t pos = 0;
  while (true) {
    const std::size_t n = std::min(chunk, wire.size() - pos);
    buf.append(wire, pos, n);
    pos += n;
    for (;;) {
      const frame_event ev = parser.next(buf.data(), buf.size());
      check(ev.consumed <= buf.size());
      check_event(ev, max);
      if (ev.type != kind::need_more) {
        got.push_back({ev.type, ev.binary, std::string(ev.data), ev.close_code});
      }
      buf.erase(0, ev.consumed);
      if (ev.type == kind::error || ev.type == kind::close) {
        return got;
      }
      if (ev.type == kind::need_more) {
        break;
      }
    }
    if (pos == wire.size()) {
      return got;
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) {
    return 0;
  }
  const auto side =
      (data[0] & 0x80) != 0 ? gwx::codec::ws::role::client : gwx::codec::ws::role::server;
  const std::size_t max = std::size_t{data[0] & 0x7fu} * 8;
  const std::size_t chunk = std::size_t{data[1]} % 32 + 1;
  const std::string wire(reinterpret_cast<const char*>(data) + 2, size - 2);

  const auto whole = run(wire, max, side, wire.size() + 1);
  check(run(wire, max, side, chunk) == whole);

  // Every message re-encodes into a frame that parses back to the same message.
  for (const auto& ev : whole) {
    if (ev.type != kind::message) {
      continue;
    }
    std::string again;
    const auto op = ev.binary ? gwx::codec::ws::opcode::binary : gwx::codec::ws::opcode::text;
    if (side == gwx::codec::ws::role::server) {
      gwx::codec::ws::encode_masked_frame(again, op, ev.data, 0x12345678u);
    } else {
      gwx::codec::ws::encode_frame(again, op, ev.data);
    }
    check(run(again, max, side, again.size()) == std::vector<event>{ev});
  }
  return 0;
}
