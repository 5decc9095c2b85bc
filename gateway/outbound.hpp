#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "gateway/listener_config.hpp"

namespace gwx::gateway {

/// Encoded bytes ready for a client socket, shared by every recipient of a broadcast.
using wire_bytes = std::shared_ptr<const std::string>;

/// Whether `payload` can be framed for `kind` as one message, never split or altered:
/// - tcp+line cannot carry a "\n" (the client would read two messages) nor a final "\r" (it
///   would be taken for a CRLF's);
/// - a WebSocket text message must be valid UTF-8 (RFC 6455 8.1: a browser fails the whole
///   connection on one that is not); binary messages carry any bytes;
/// - the length-prefixed and raw framings carry any bytes.
bool frameable(framing kind, std::string_view payload, bool binary);

/// Why frameable() refused `payload` for `kind` (the error a single-recipient send answers).
const char* unframeable_reason(framing kind);

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
  /// frameable() for this message, decided at most once per framing.
  bool frameable(framing kind);
  /// The message, unframed.
  std::string_view payload() const { return payload_; }

 private:
  std::string_view payload_;
  bool binary_;
  std::array<wire_bytes, 4> by_kind_;
  std::array<std::int8_t, 4> frameable_{-1, -1, -1, -1};  // -1: not decided yet
};

}  // namespace gwx::gateway
