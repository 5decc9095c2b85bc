#include "common/link/link_codec.hpp"

#include <google/protobuf/io/coded_stream.h>

#include <cstring>

namespace gwx::link_codec {
namespace {

constexpr char k_magic[] = "GWXLNK";
constexpr std::size_t k_magic_size = 6;

std::uint32_t read_u32(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return (std::uint32_t{u[0]} << 24) | (std::uint32_t{u[1]} << 16) | (std::uint32_t{u[2]} << 8) |
         std::uint32_t{u[3]};
}

/// Skips one varint at `i`; false if `in` ends first or the varint is longer than 10 bytes.
bool skip_varint(std::string_view in, std::size_t& i) {
  for (int n = 0; n < 10 && i < in.size(); ++n) {
    if ((static_cast<unsigned char>(in[i++]) & 0x80) == 0) {
      return true;
    }
  }
  return false;
}

/// Whether a frame header is a Command whose operation is send_to_clients: the command field
/// (10, length-delimited), its length, an optional request_id (1, varint), then the
/// send_to_clients field (2, length-delimited). Encoders write fields in number order.
bool is_send_to_clients(std::string_view header) {
  constexpr char k_command_tag = 0x52;
  constexpr char k_request_id_tag = 0x08;
  constexpr char k_send_to_clients_tag = 0x12;
  std::size_t i = 1;
  if (header.empty() || header[0] != k_command_tag || !skip_varint(header, i)) {
    return false;
  }
  if (i < header.size() && header[i] == k_request_id_tag && !skip_varint(header, ++i)) {
    return false;
  }
  return i < header.size() && header[i] == k_send_to_clients_tag;
}

void clear_unknown_fields(google::protobuf::Message& m) {
  const auto* reflection = m.GetReflection();
  if (!reflection->GetUnknownFields(m).empty()) {
    reflection->MutableUnknownFields(&m)->Clear();
  }
}

void write_u32(char* p, std::uint32_t v) {
  p[0] = static_cast<char>(v >> 24);
  p[1] = static_cast<char>(v >> 16);
  p[2] = static_cast<char>(v >> 8);
  p[3] = static_cast<char>(v);
}

constexpr char k_preamble[k_preamble_size] = {'G',
                                              'W',
                                              'X',
                                              'L',
                                              'N',
                                              'K',
                                              static_cast<char>(k_version >> 8),
                                              static_cast<char>(k_version & 0xff)};

frame_bytes error(const char* reason) {
  frame_bytes r;
  r.status = codec::decode_status::error;
  r.reason = reason;
  return r;
}

}  // namespace

// First byte of a TLS ClientHello / ServerHello record.
constexpr char k_tls_handshake_record = 0x16;

std::string_view preamble() {
  return {k_preamble, k_preamble_size};
}

codec::decode_result check_preamble(std::string_view in) {
  codec::decode_result r;
  const std::size_t n = std::min(in.size(), k_magic_size);
  if (std::memcmp(in.data(), k_magic, n) != 0) {
    r.status = codec::decode_status::error;
    if (in[0] == k_tls_handshake_record) {
      r.reason =
          "the peer speaks TLS, this end's links are plain (set the same --link-tls-* "
          "options on both ends)";
      return r;
    }
    // A version-1 peer starts with a 4-byte length and a protobuf Frame.
    r.reason = "the peer does not speak gwx link protocol 2 (an older gwx, or not gwx at all)";
    return r;
  }
  if (in.size() < k_preamble_size) {
    return r;
  }
  const auto version = static_cast<std::uint16_t>((static_cast<unsigned char>(in[6]) << 8) |
                                                  static_cast<unsigned char>(in[7]));
  if (version != k_version) {
    r.status = codec::decode_status::error;
    r.reason = version > k_version ? "the peer speaks a newer gwx link protocol"
                                   : "the peer speaks an older gwx link protocol";
    return r;
  }
  r.status = codec::decode_status::message;
  r.consumed = k_preamble_size;
  return r;
}

frame_bytes decode(std::string_view in, const limits& lim) {
  frame_bytes r;
  if (in.size() < k_prefix_size) {
    return r;
  }
  const std::size_t length = read_u32(in.data());
  const std::size_t header_len = read_u32(in.data() + 4);
  if (length > lim.max_frame) {
    return error("link frame larger than the limit");
  }
  if (header_len > length) {
    return error("link frame header longer than the frame");
  }
  if (header_len > lim.max_header) {
    return error("link frame header larger than the limit");
  }
  if (header_len == 0) {
    return error("link frame without a header");
  }
  if (in.size() - k_prefix_size < length) {
    return r;
  }
  r.status = codec::decode_status::message;
  r.consumed = k_prefix_size + length;
  r.header = in.substr(k_prefix_size, header_len);
  r.payload = in.substr(k_prefix_size + header_len, length - header_len);
  return r;
}

frame_bytes decode(std::string_view in, const limits& lim, link::v2::Frame& frame) {
  auto r = decode(in, lim);
  if (r.status != codec::decode_status::message) {
    return r;
  }
  // An event after an event (a worker's steady state) is parsed into the same ClientEvent:
  // Clear() keeps its strings' capacity, so parsing it allocates nothing. An event frame's
  // header starts with the event field (7, length-delimited: tag 0x3a). Likewise a command
  // that sends to clients after another (the gateway's steady state: replies and pushes) keeps
  // the Command, its SendToClients and the strings of its client ids: only the message is
  // allocated again. Any other header starts from a cleared frame. Either way the frame holds
  // exactly what the header says.
  constexpr char k_event_tag = 0x3a;
  if (frame.body_case() == link::v2::Frame::kEvent && r.header[0] == k_event_tag) {
    frame.mutable_event()->Clear();
    clear_unknown_fields(frame);
  } else if (frame.body_case() == link::v2::Frame::kCommand &&
             frame.command().op_case() == link::v2::Command::kSendToClients &&
             is_send_to_clients(r.header)) {
    auto* command = frame.mutable_command();
    command->mutable_send_to_clients()->Clear();
    command->set_request_id(0);
    clear_unknown_fields(*command);
    clear_unknown_fields(frame);
  } else {
    frame.Clear();
  }
  google::protobuf::io::CodedInputStream stream(
      reinterpret_cast<const std::uint8_t*>(r.header.data()), static_cast<int>(r.header.size()));
  if (!frame.MergeFromCodedStream(&stream) || !stream.ConsumedEntireMessage()) {
    return error("malformed link frame header");
  }
  return r;
}

void append_prefix(std::string& out, std::size_t header_len, std::size_t payload_len) {
  char prefix[k_prefix_size];
  write_u32(prefix, static_cast<std::uint32_t>(header_len + payload_len));
  write_u32(prefix + 4, static_cast<std::uint32_t>(header_len));
  out.append(prefix, k_prefix_size);
}

std::size_t encoded_size(const link::v2::Frame& header, std::size_t payload_size) {
  return k_prefix_size + header.ByteSizeLong() + payload_size;
}

void encode(std::string& out, const link::v2::Frame& header, std::string_view payload) {
  const std::size_t header_len = header.ByteSizeLong();
  const std::size_t pos = out.size();
  out.resize(pos + k_prefix_size + header_len);
  char* p = out.data() + pos;
  write_u32(p, static_cast<std::uint32_t>(header_len + payload.size()));
  write_u32(p + 4, static_cast<std::uint32_t>(header_len));
  header.SerializeWithCachedSizesToArray(reinterpret_cast<std::uint8_t*>(p + k_prefix_size));
  out.append(payload.data(), payload.size());
}

std::string* payload_field(link::v2::Frame& frame) {
  using link::v2::Command;
  using link::v2::Frame;
  if (frame.body_case() == Frame::kEvent) {
    return frame.mutable_event()->mutable_payload();
  }
  if (frame.body_case() != Frame::kCommand) {
    return nullptr;
  }
  auto& c = *frame.mutable_command();
  switch (c.op_case()) {
    case Command::kSendToClients:
      return c.mutable_send_to_clients()->mutable_message()->mutable_data();
    case Command::kSendToAll:
      return c.mutable_send_to_all()->mutable_message()->mutable_data();
    case Command::kSendToGroups:
      return c.mutable_send_to_groups()->mutable_message()->mutable_data();
    case Command::kSendToUids:
      return c.mutable_send_to_uids()->mutable_message()->mutable_data();
    case Command::kCloseClient:
      return c.close_client().has_final_message()
                 ? c.mutable_close_client()->mutable_final_message()->mutable_data()
                 : nullptr;
    default:
      return nullptr;
  }
}

std::string detach_payload(link::v2::Frame& frame) {
  std::string out;
  if (auto* field = payload_field(frame)) {
    out.swap(*field);
  }
  return out;
}

bool attach_payload(link::v2::Frame& frame, std::string_view payload) {
  if (payload.empty()) {
    return true;
  }
  auto* field = payload_field(frame);
  if (field == nullptr) {
    return false;
  }
  field->assign(payload.data(), payload.size());
  return true;
}

}  // namespace gwx::link_codec
