#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/codec/ws_frame.hpp"
#include "tools/bench/target_url.hpp"

namespace gwx::bench {

/// Which end of a connection the codec serves: the load generator (client: masks what it sends,
/// expects unmasked frames) or the reference server.
enum class side { client, server };

/// One step of message_decoder.
struct wire_event {
  /// skip: bytes consumed with nothing to act on (a pong).
  enum class kind { need_more, message, ping, skip, close, error };
  kind type = kind::need_more;
  std::size_t consumed = 0;  ///< drop this many bytes after using `data`
  std::string_view data;     ///< message payload / ping payload / error reason
  bool binary = false;
  std::uint16_t close_code = 0;  ///< close: code received; error: code to send (WebSocket)
};

/// Splits a byte stream into messages with the project's codecs (common/codec): WebSocket frames,
/// line, length prefix; tcp+raw has no framing, so the server takes each read as one message and
/// the client cuts the stream into pieces of the known message size. Same contract as the codecs:
/// pass all unconsumed bytes on every call, drop `consumed` after each event (need_more too: the
/// WebSocket parser takes in whole fragments), call again until need_more. Thread-compatible.
class message_decoder {
 public:
  /// `raw_chunk`: tcp+raw on the client side, the size of each message (0: every call's whole
  /// input is one message).
  message_decoder(protocol proto, side s, std::size_t max_message, std::size_t raw_chunk = 0);

  wire_event next(char* data, std::size_t size);

 private:
  protocol proto_;
  std::size_t max_message_;
  std::size_t raw_chunk_;
  std::optional<codec::ws::frame_parser> frames_;  // ws only
};

/// Appends one message to `out` in the framing of `proto`; a client's WebSocket frames are
/// masked with `mask_key` (RFC 6455 5.3), a server's are not.
void encode_message(std::string& out, protocol proto, side s, std::string_view payload, bool binary,
                    std::uint32_t mask_key);

/// Appends a WebSocket control frame (ping/pong/close body) from `s`.
void encode_control(std::string& out, side s, codec::ws::opcode op, std::string_view body,
                    std::uint32_t mask_key);

/// The client's HTTP upgrade request for `url`, with `key` as Sec-WebSocket-Key (base64 of 16
/// bytes made from `seed`), which is returned through `key`.
std::string make_upgrade_request(const target_url& url, std::uint64_t seed, std::string& key);

/// Checks a server's upgrade response from the front of `in`. Returns the length of the response
/// head when it is a valid 101 for `key`, 0 when more bytes are needed; throws
/// std::runtime_error with a one-line reason (status line, bad accept key, head too large).
std::size_t check_upgrade_response(std::string_view in, const std::string& key);

/// A small fast PRNG (xorshift64*), for mask keys: not cryptographic, and need not be (the
/// benchmark's peers are its own servers). Thread-compatible.
class fast_random {
 public:
  explicit fast_random(std::uint64_t seed) : state_(seed | 1) {}
  std::uint32_t next() {
    state_ ^= state_ >> 12;
    state_ ^= state_ << 25;
    state_ ^= state_ >> 27;
    return static_cast<std::uint32_t>((state_ * 0x2545F4914F6CDD1DULL) >> 32);
  }

 private:
  std::uint64_t state_;
};

}  // namespace gwx::bench
