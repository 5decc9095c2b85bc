#include "common/codec/ws_frame.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>

namespace gwx::codec::ws {

namespace {

constexpr unsigned char k_fin = 0x80;
constexpr unsigned char k_rsv = 0x70;
constexpr unsigned char k_opcode = 0x0f;
constexpr unsigned char k_control = 0x08;
constexpr unsigned char k_mask = 0x80;
constexpr unsigned char k_len7 = 0x7f;
constexpr unsigned char k_len16 = 126;
constexpr unsigned char k_len64 = 127;
constexpr std::size_t k_max_close_reason = k_max_control_payload - 2;
// A fragment buffer grown past this is given back once its message has been delivered, so an
// idle connection does not keep the memory of its largest message.
constexpr std::size_t k_keep_fragment_capacity = 4096;

bool is_known_opcode(unsigned op) {
  switch (static_cast<opcode>(op)) {
    case opcode::continuation:
    case opcode::text:
    case opcode::binary:
    case opcode::close:
    case opcode::ping:
    case opcode::pong:
      return true;
  }
  return false;
}

/// XORs p[0..n) with the mask key, where p[0] is byte `offset` of the frame payload.
void apply_mask(unsigned char* p, std::size_t n, const unsigned char* key, std::size_t offset) {
  unsigned char rotated[8];
  for (std::size_t i = 0; i < sizeof rotated; ++i) {
    rotated[i] = key[(offset + i) & 3];
  }
  std::uint64_t word_key;
  std::memcpy(&word_key, rotated, sizeof word_key);
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    std::uint64_t word;
    std::memcpy(&word, p + i, sizeof word);
    word ^= word_key;
    std::memcpy(p + i, &word, sizeof word);
  }
  for (; i < n; ++i) {
    p[i] ^= rotated[i & 7];
  }
}

}  // namespace

bool is_valid_close_code(std::uint16_t code) {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
         (code >= 3000 && code <= 4999);
}

frame_parser::frame_parser(std::size_t max_message, role side)
    : max_message_(max_message), role_(side) {}

void frame_parser::reset(std::size_t max_message) {
  std::string().swap(fragments_);  // moving a new parser in would keep this one's room
  *this = frame_parser(max_message, role_);
}

frame_event frame_parser::fail(std::uint16_t code, const char* reason) {
  error_code_ = code;
  error_reason_ = reason;
  in_message_ = false;
  std::string().swap(fragments_);
  frame_event ev;
  ev.type = frame_event::kind::error;
  ev.close_code = code;
  ev.reason = reason;
  return ev;
}

frame_event frame_parser::next(char* data, std::size_t size) {
  frame_event ev;
  if (error_code_ != 0) {
    return fail(error_code_, error_reason_);
  }
  if (closed_) {
    return ev;
  }
  if (release_fragments_) {
    release_fragments_ = false;
    fragments_.clear();
    if (fragments_.capacity() > k_keep_fragment_capacity) {
      std::string().swap(fragments_);
    }
  }

  // Start of the frame being looked at. Whole fragments before it are already copied into
  // fragments_: every return consumes them, need_more too, so the caller never keeps their
  // framing (many tiny fragments cost the caller nothing, only their payload counts).
  std::size_t pos = 0;
  const auto need_more = [&] {
    frame_event more;
    more.consumed = pos;
    return more;
  };
  for (;;) {
    auto* p = reinterpret_cast<unsigned char*>(data + pos);
    const std::size_t avail = size - pos;
    if (avail < 2) {
      return need_more();
    }
    const bool fin = (p[0] & k_fin) != 0;
    const unsigned op = p[0] & k_opcode;
    const bool masked = (p[1] & k_mask) != 0;
    const unsigned len7 = p[1] & k_len7;
    const bool control = (op & k_control) != 0;

    // Everything that the first two bytes can tell is checked before waiting for more.
    if ((p[0] & k_rsv) != 0) {
      return fail(k_close_protocol_error, "reserved bits set without a negotiated extension");
    }
    if (!is_known_opcode(op)) {
      return fail(k_close_protocol_error, "unknown opcode");
    }
    if (role_ == role::server && !masked) {
      return fail(k_close_protocol_error, "client frame is not masked");
    }
    if (role_ == role::client && masked) {
      return fail(k_close_protocol_error, "server frame is masked");
    }
    if (control) {
      if (!fin) {
        return fail(k_close_protocol_error, "fragmented control frame");
      }
      if (len7 > k_max_control_payload) {
        return fail(k_close_protocol_error, "control frame payload longer than 125 bytes");
      }
    } else if (static_cast<opcode>(op) == opcode::continuation) {
      if (!in_message_) {
        return fail(k_close_protocol_error, "continuation frame without a message to continue");
      }
    } else if (in_message_) {
      return fail(k_close_protocol_error, "new data message inside a fragmented message");
    }

    std::size_t header = 2;
    std::uint64_t length = len7;
    if (len7 == k_len16) {
      header = 4;
      if (avail < header) {
        return need_more();
      }
      length = (std::uint64_t{p[2]} << 8) | p[3];
    } else if (len7 == k_len64) {
      header = 10;
      if (avail < header) {
        return need_more();
      }
      length = 0;
      for (std::size_t i = 2; i < 10; ++i) {
        length = (length << 8) | p[i];
      }
      if ((length >> 63) != 0) {
        return fail(k_close_protocol_error, "64-bit payload length with the high bit set");
      }
    }
    if (!control) {
      const std::uint64_t so_far = in_message_ ? fragments_.size() : 0;
      if (length > max_message_ || so_far > max_message_ - length) {
        return fail(k_close_too_big, "message larger than the maximum message size");
      }
    }
    const unsigned char* key = nullptr;
    if (masked) {
      if (avail < header + 4) {
        return need_more();
      }
      key = p + header;
      header += 4;
    }

    // Bounded by max_message_ or by 125 above, so it fits and nothing has been allocated for it.
    const auto payload_size = static_cast<std::size_t>(length);
    unsigned char* payload = p + header;
    const std::size_t have = std::min(avail - header, payload_size);

    if (control) {
      if (have < payload_size) {
        return need_more();
      }
      if (key != nullptr) {
        apply_mask(payload, payload_size, key, 0);
      }
      ev.consumed = pos + header + payload_size;
      const std::string_view body(reinterpret_cast<const char*>(payload), payload_size);
      switch (static_cast<opcode>(op)) {
        case opcode::ping:
          ev.type = frame_event::kind::ping;
          ev.data = body;
          return ev;
        case opcode::pong:
          ev.type = frame_event::kind::pong;
          ev.data = body;
          return ev;
        default:
          break;
      }
      if (body.empty()) {
        ev.close_code = k_close_no_status;
      } else if (body.size() == 1) {
        return fail(k_close_protocol_error, "close frame with a one-byte body");
      } else {
        ev.close_code = static_cast<std::uint16_t>((payload[0] << 8) | payload[1]);
        if (!is_valid_close_code(ev.close_code)) {
          return fail(k_close_protocol_error, "invalid close code");
        }
        ev.data = body.substr(2);
        if (!is_valid_utf8(ev.data)) {
          return fail(k_close_invalid_payload, "close reason is not valid UTF-8");
        }
      }
      ev.type = frame_event::kind::close;
      closed_ = true;
      return ev;
    }

    // Data frame. The first look at a frame that starts a message resets the message state.
    if (!frame_open_) {
      frame_open_ = true;
      frame_progress_ = 0;
      if (static_cast<opcode>(op) != opcode::continuation) {
        message_binary_ = static_cast<opcode>(op) == opcode::binary;
        utf8_.reset();
      }
    }
    // Unmask and check what has arrived so far, so bad text fails before the frame is complete.
    if (have > frame_progress_) {
      unsigned char* fresh = payload + frame_progress_;
      const std::size_t fresh_size = have - frame_progress_;
      if (key != nullptr) {
        apply_mask(fresh, fresh_size, key, frame_progress_);
      }
      frame_progress_ = have;
      if (!message_binary_ &&
          !utf8_.feed(std::string_view(reinterpret_cast<const char*>(fresh), fresh_size))) {
        return fail(k_close_invalid_payload, "text message is not valid UTF-8");
      }
    }
    if (have < payload_size) {
      return need_more();
    }
    frame_open_ = false;
    frame_progress_ = 0;
    const std::string_view body(reinterpret_cast<const char*>(payload), payload_size);
    if (!fin) {
      fragments_.append(body);
      in_message_ = true;
      pos += header + payload_size;
      continue;
    }
    if (!message_binary_ && !utf8_.complete()) {
      return fail(k_close_invalid_payload, "text message ends inside a UTF-8 sequence");
    }
    ev.type = frame_event::kind::message;
    ev.binary = message_binary_;
    ev.consumed = pos + header + payload_size;
    if (in_message_) {
      fragments_.append(body);
      in_message_ = false;
      release_fragments_ = true;
      ev.data = fragments_;
    } else {
      ev.data = body;
    }
    return ev;
  }
}

std::size_t encode_header(char* out, opcode op, std::size_t size, bool fin) {
  auto* o = reinterpret_cast<unsigned char*>(out);
  o[0] = static_cast<unsigned char>((fin ? k_fin : 0) | static_cast<unsigned char>(op));
  if (size < k_len16) {
    o[1] = static_cast<unsigned char>(size);
    return 2;
  }
  if (size <= 0xffff) {
    o[1] = k_len16;
    o[2] = static_cast<unsigned char>(size >> 8);
    o[3] = static_cast<unsigned char>(size);
    return 4;
  }
  o[1] = k_len64;
  const auto wide = static_cast<std::uint64_t>(size);
  for (std::size_t i = 0; i < 8; ++i) {
    o[2 + i] = static_cast<unsigned char>(wide >> (56 - 8 * i));
  }
  return 10;
}

void encode_frame(std::string& out, opcode op, std::string_view payload, bool fin) {
  char header[k_max_header];
  const std::size_t n = encode_header(header, op, payload.size(), fin);
  out.reserve(out.size() + n + payload.size());
  out.append(header, n);
  out.append(payload);
}

void encode_close(std::string& out, std::uint16_t code, std::string_view reason) {
  if (code == k_close_no_status) {
    encode_frame(out, opcode::close, {});
    return;
  }
  std::size_t cut = std::min(reason.size(), k_max_close_reason);
  // Never split a UTF-8 sequence: back up to the start of the one that does not fit.
  while (cut > 0 && cut < reason.size() &&
         (static_cast<unsigned char>(reason[cut]) & 0xc0) == 0x80) {
    --cut;
  }
  char body[k_max_control_payload];
  body[0] = static_cast<char>(code >> 8);
  body[1] = static_cast<char>(code & 0xff);
  if (cut > 0) {
    // An empty reason may be a default string_view, whose data() is null: memcpy forbids it.
    std::memcpy(body + 2, reason.data(), cut);
  }
  encode_frame(out, opcode::close, std::string_view(body, 2 + cut));
}

void encode_masked_frame(std::string& out, opcode op, std::string_view payload,
                         std::uint32_t mask_key, bool fin) {
  char header[k_max_header];
  std::size_t n = encode_header(header, op, payload.size(), fin);
  header[1] = static_cast<char>(static_cast<unsigned char>(header[1]) | k_mask);
  unsigned char key[4] = {
      static_cast<unsigned char>(mask_key >> 24), static_cast<unsigned char>(mask_key >> 16),
      static_cast<unsigned char>(mask_key >> 8), static_cast<unsigned char>(mask_key)};
  std::memcpy(header + n, key, sizeof key);
  n += sizeof key;
  const std::size_t start = out.size();
  out.reserve(start + n + payload.size());
  out.append(header, n);
  out.append(payload);
  apply_mask(reinterpret_cast<unsigned char*>(out.data() + start + n), payload.size(), key, 0);
}

}  // namespace gwx::codec::ws
