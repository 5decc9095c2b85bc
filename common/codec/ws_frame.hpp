#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/codec/utf8.hpp"

namespace gwx::codec::ws {

/// Frame opcodes of RFC 6455 5.2.
enum class opcode : std::uint8_t {
  continuation = 0,
  text = 1,
  binary = 2,
  close = 8,
  ping = 9,
  pong = 10
};

/// Close codes used by the parser (RFC 6455 7.4.1).
constexpr std::uint16_t k_close_normal = 1000, k_close_going_away = 1001,
                        k_close_protocol_error = 1002, k_close_unsupported = 1003,
                        k_close_no_status = 1005, k_close_invalid_payload = 1007,
                        k_close_policy = 1008, k_close_too_big = 1009, k_close_internal = 1011,
                        k_close_try_again_later = 1013;

/// Largest control-frame payload (RFC 6455 5.5).
constexpr std::size_t k_max_control_payload = 125;
/// Longest frame header: 2 bytes + 8-byte length + 4-byte mask key.
constexpr std::size_t k_max_header = 14;

/// Which side of the connection a parser sits on.
enum class role : std::uint8_t {
  server,  ///< parses client->server frames, which must be masked
  client,  ///< parses server->client frames, which must not be masked
};

/// One step of the frame parser.
struct frame_event {
  /// What the step produced.
  enum class kind { need_more, message, ping, pong, close, error };
  kind type = kind::need_more;  ///< need_more until a whole frame (or an error) is seen
  /// Bytes of the input consumed by this step; drop them after using `data`. With `need_more`:
  /// whole fragments of a fragmented message, already copied into the parser.
  std::size_t consumed = 0;
  bool binary = false;  ///< message: binary (true) or text
  /// Message payload / ping-pong payload / close reason; valid until the next call and until the
  /// caller drops the consumed bytes.
  std::string_view data;
  /// close: code received (1005 when the close frame had no body); error: code to send.
  std::uint16_t close_code = 0;
  const char* reason = "";  ///< error: human-readable reason (static string)
};

/// Sans-I/O RFC 6455 frame parser for one connection. Enforces masking, RSV bits (no extensions),
/// known opcodes, control frames (FIN set, payload <= 125), fragmentation order, UTF-8 of text
/// messages (incrementally: a bad byte fails as soon as it arrives, even mid-frame) and of close
/// reasons, close codes (1000-1003, 1007-1014, 3000-4999; anything else, and a 1-byte close body,
/// is 1002) and the maximum message size (1009, decided from the frame header before the payload
/// is buffered, and on fragment accumulation). Unmasks in place, so the input is mutable.
///
/// Contract: the caller keeps one buffer per connection, passes all its unconsumed bytes on every
/// call (the parser remembers how far it got into a frame that has not fully arrived), drops
/// exactly `consumed` bytes after each event, need_more included, and calls again until
/// `need_more`. A message in a single frame is returned as a view into that buffer (zero copy); a
/// fragmented one is assembled in an internal buffer of at most max_message bytes, and each whole
/// fragment is consumed as soon as it is copied there (need_more may consume), so the caller
/// holds at most one unfinished frame however small the fragments are. Control frames may
/// interleave fragments.
/// After `close` every call returns need_more (stop reading); after `error` every call returns
/// the same error. Thread-compatible.
class frame_parser {
 public:
  /// `max_message` bounds a whole (possibly fragmented) data message in bytes.
  explicit frame_parser(std::size_t max_message, role side = role::server);

  /// Back to the state of a parser just made with `max_message`, keeping nothing of a
  /// fragmented message's buffer (for a parser kept to serve another connection).
  void reset(std::size_t max_message);

  /// Parses at most one event from the front of [data, data+size).
  frame_event next(char* data, std::size_t size);
  /// Bytes held for the fragmented message in progress (its buffer's capacity; 0 when none).
  std::size_t buffered() const { return fragments_.empty() ? 0 : fragments_.capacity(); }

  /// True while a fragmented message has started and its final fragment has not arrived.
  bool in_fragmented_message() const { return in_message_; }

 private:
  frame_event fail(std::uint16_t code, const char* reason);

  std::size_t max_message_;
  role role_;
  bool in_message_ = false;      // a fragmented message is open
  bool message_binary_ = false;  // type of the current message
  bool closed_ = false;
  bool release_fragments_ = false;  // fragments_ was handed out by the previous call
  bool frame_open_ = false;         // the data frame at the front has been looked at before
  std::size_t frame_progress_ = 0;  // payload bytes of that frame already unmasked and checked
  std::uint16_t error_code_ = 0;    // non-zero once the stream is broken
  const char* error_reason_ = "";
  utf8_validator utf8_;    // text of the current message
  std::string fragments_;  // payload of the fragmented message so far
};

/// Writes the header of an unmasked frame with a payload of `size` bytes into `out` (room for
/// k_max_header bytes) and returns its length, so a broadcast can build its bytes once.
std::size_t encode_header(char* out, opcode op, std::size_t size, bool fin = true);

/// Appends an unmasked (server) frame to `out`.
void encode_frame(std::string& out, opcode op, std::string_view payload, bool fin = true);

/// Appends a close frame; the reason is cut at a UTF-8 boundary to fit 125 bytes. Code 1005
/// (no status) produces a close frame without a body.
void encode_close(std::string& out, std::uint16_t code, std::string_view reason = {});

/// Appends a masked (client) frame, for tests and the benchmark client.
void encode_masked_frame(std::string& out, opcode op, std::string_view payload,
                         std::uint32_t mask_key, bool fin = true);

/// True for the close codes a peer may send (RFC 6455 7.4).
bool is_valid_close_code(std::uint16_t code);

}  // namespace gwx::codec::ws
