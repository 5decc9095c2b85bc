#pragma once

#include <array>
#include <memory>
#include <string>
#include <string_view>

#include "gateway/listener_config.hpp"

namespace gwx::gateway {

/// Encoded bytes ready for a client socket, shared by every recipient of a broadcast.
using wire_bytes = std::shared_ptr<const std::string>;

/// Frames `payload` for one framing (WebSocket text/binary frame, line, length prefix, raw).
wire_bytes encode_for(framing kind, std::string_view payload, bool binary);

/// Appends `payload` framed for `kind` to `out` (at most payload + 16 bytes).
void encode_into(std::string& out, framing kind, std::string_view payload, bool binary);

/// Builds each framing's bytes at most once for a message delivered to many clients.
/// Not thread-safe: one per loop per broadcast.
class encode_cache {
 public:
  encode_cache(std::string_view payload, bool binary) : payload_(payload), binary_(binary) {}
  const wire_bytes& get(framing kind);

 private:
  std::string_view payload_;
  bool binary_;
  std::array<wire_bytes, 4> by_kind_;
};

}  // namespace gwx::gateway
