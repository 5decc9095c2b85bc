#include "gateway/outbound.hpp"

#include "common/codec/length_prefix.hpp"
#include "common/codec/line.hpp"
#include "common/codec/utf8.hpp"
#include "common/codec/ws_frame.hpp"

namespace gwx::gateway {

bool frameable(framing kind, std::string_view payload, bool binary) {
  switch (kind) {
    case framing::line:
      return payload.find('\n') == std::string_view::npos &&
             (payload.empty() || payload.back() != '\r');
    case framing::websocket:
      return binary || codec::is_valid_utf8(payload);
    case framing::frame:
    case framing::raw:
      break;
  }
  return true;
}

const char* unframeable_reason(framing kind) {
  return kind == framing::websocket
             ? "unframeable: a WebSocket text message must be valid UTF-8 (send it as binary)"
             : "unframeable: a tcp+line client cannot receive a newline";
}

void encode_into(std::string& out, framing kind, std::string_view payload, bool binary) {
  switch (kind) {
    case framing::websocket:
      codec::ws::encode_frame(out, binary ? codec::ws::opcode::binary : codec::ws::opcode::text,
                              payload);
      break;
    case framing::line:
      codec::line::encode(out, payload);
      break;
    case framing::frame:
      codec::length_prefix::encode(out, payload);
      break;
    case framing::raw:
      out.append(payload);
      break;
  }
}

wire_bytes encode_for(framing kind, std::string_view payload, bool binary) {
  auto out = std::make_shared<std::string>();
  out->reserve(payload.size() + 10);
  encode_into(*out, kind, payload, binary);
  return out;
}

bool encode_cache::frameable(framing kind) {
  auto& slot = frameable_[static_cast<std::size_t>(kind)];
  if (slot < 0) {
    slot = gateway::frameable(kind, payload_, binary_) ? 1 : 0;
  }
  return slot == 1;
}

const wire_bytes& encode_cache::get(framing kind) {
  auto& slot = by_kind_[static_cast<std::size_t>(kind)];
  if (!slot) {
    slot = encode_for(kind, payload_, binary_);
  }
  return slot;
}

}  // namespace gwx::gateway
