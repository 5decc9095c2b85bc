#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/codec/decode_result.hpp"
#include "gwx/link/v2/link.pb.h"

namespace gwx::link_codec {

/// The link's wire format, version 2 (sans-I/O; no socket, timer or logger here).
///
/// Each side first sends the 8-byte preamble "GWXLNK" + big-endian u16 version, then frames:
///
///   u32 BE  length of what follows (8 + header + payload excluded: header_len + payload_len)
///   u32 BE  header_len
///   header  a serialized link Frame (never carries message bytes)
///   payload raw bytes: the client message of an event, the message of a send command, the
///           final message of a close (empty for every other frame)
///
/// The payload never goes through a protobuf field: the gateway writes a client's bytes
/// straight after the header and reads a command's message as a view into its read buffer.
inline constexpr std::uint16_t k_version = 2;
inline constexpr std::size_t k_preamble_size = 8;
inline constexpr std::size_t k_prefix_size = 8;

/// Limits checked before anything is allocated.
struct limits {
  /// Largest header + payload accepted.
  std::size_t max_frame = 64 * 1024 * 1024;
  /// Largest header accepted (queries' answers can be long lists).
  std::size_t max_header = 64 * 1024 * 1024;
};

/// Limits for frames before the peer has proven the secret: a Challenge or Hello is tiny.
inline constexpr limits k_handshake_limits{4096, 4096};

/// The preamble this version sends.
std::string_view preamble();

/// Checks the peer's preamble at the front of `in`: need_more, message (consumed = 8) or error
/// with a reason that names the peer's version when it is another gwx link.
codec::decode_result check_preamble(std::string_view in);

/// One decoded frame; both views point into the caller's buffer.
struct frame_bytes {
  codec::decode_status status = codec::decode_status::need_more;
  std::size_t consumed = 0;
  std::string_view header;
  std::string_view payload;
  const char* reason = "";
};

/// Decodes at most one frame from the front of `in`. Stateless: call again with the bytes
/// after `consumed`.
frame_bytes decode(std::string_view in, const limits& lim);

/// Decodes one frame and parses its header into `frame` (whatever it held is replaced; an
/// event's object is reused for the next event); an unparsable header is an error.
frame_bytes decode(std::string_view in, const limits& lim, link::v2::Frame& frame);

/// Appends one frame (header serialized in place, then the payload) to `out`.
void encode(std::string& out, const link::v2::Frame& header, std::string_view payload = {});

/// Appends the 8-byte prefix of a frame whose `header_len` header bytes the caller appends next,
/// then its `payload_len` payload bytes (for a header encoded without a Frame object).
void append_prefix(std::string& out, std::size_t header_len, std::size_t payload_len);

/// A worker's reply to one client, the hottest frame there is, encoded without a Frame object:
/// the same bytes encode() appends for a Frame holding a Command whose send_to_clients names
/// `client_id` once and carries a message with `binary` (and `payload` as the frame's payload).
void encode_send_to_client(std::string& out, std::string_view client_id, bool binary,
                           std::string_view payload);
/// Bytes encode_send_to_client() appends.
std::size_t send_to_client_size(std::string_view client_id, bool binary, std::size_t payload_size);

/// Bytes encode() appends for this header and payload.
std::size_t encoded_size(const link::v2::Frame& header, std::size_t payload_size);

/// The field whose bytes travel as the frame's payload: a MESSAGE event's payload, a send
/// command's message data, a close command's final message data; nullptr for other frames.
std::string* payload_field(link::v2::Frame& frame);

/// Moves the payload field's bytes out (the header is then encoded without them).
std::string detach_payload(link::v2::Frame& frame);

/// Puts a received payload into the frame's payload field (a copy; for receivers that keep
/// the frame), replacing whatever the header put there. A payload on a frame that carries none
/// is an error: false.
bool attach_payload(link::v2::Frame& frame, std::string_view payload);

}  // namespace gwx::link_codec
