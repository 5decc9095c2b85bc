#include "gateway/outbound.hpp"

#include "common/codec/length_prefix.hpp"
#include "common/codec/line.hpp"
#include "common/codec/ws_frame.hpp"

namespace gwx::gateway {

wire_bytes encode_for(framing kind, std::string_view payload, bool binary) {
  auto out = std::make_shared<std::string>();
  switch (kind) {
    case framing::websocket:
      out->reserve(payload.size() + 10);
      codec::ws::encode_frame(*out, binary ? codec::ws::opcode::binary : codec::ws::opcode::text,
                              payload);
      break;
    case framing::line:
      out->reserve(payload.size() + 1);
      codec::line::encode(*out, payload);
      break;
    case framing::frame:
      out->reserve(payload.size() + codec::length_prefix::k_header);
      codec::length_prefix::encode(*out, payload);
      break;
    case framing::raw:
      out->assign(payload);
      break;
  }
  return out;
}

const wire_bytes& encode_cache::get(framing kind) {
  auto& slot = by_kind_[static_cast<std::size_t>(kind)];
  if (!slot) {
    slot = encode_for(kind, payload_, binary_);
  }
  return slot;
}

}  // namespace gwx::gateway
