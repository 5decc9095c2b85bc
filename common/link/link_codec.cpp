#include "common/link/link_codec.hpp"

#include <google/protobuf/io/coded_stream.h>

#include <cstring>

#include "common/link/protowire.hpp"

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

using link::v2::ClientEvent;
using link::v2::Command;
using link::v2::Frame;
using link::v2::SendToClients;
namespace pw = protowire;

constexpr char k_event_tag = pw::tag(Frame::kEventFieldNumber, pw::k_len);
constexpr char k_command_tag = pw::tag(Frame::kCommandFieldNumber, pw::k_len);
constexpr char k_send_to_clients_tag = pw::tag(Command::kSendToClientsFieldNumber, pw::k_len);
static_assert(Frame::kCommandFieldNumber < 16 && ClientEvent::kRedeliveredFieldNumber < 16 &&
                  ClientEvent::kClientIdFieldNumber < 16,
              "one-byte tags only");

/// Whether a frame header is a Command whose operation is send_to_clients: the command field
/// (10, length-delimited), its length, an optional request_id (1, varint), then the
/// send_to_clients field (2, length-delimited). Encoders write fields in number order.
bool is_send_to_clients(std::string_view header) {
  constexpr char k_request_id_tag = pw::tag(Command::kRequestIdFieldNumber, pw::k_varint);
  std::size_t i = 1;
  if (header.empty() || header[0] != k_command_tag || !skip_varint(header, i)) {
    return false;
  }
  if (i < header.size() && header[i] == k_request_id_tag && !skip_varint(header, ++i)) {
    return false;
  }
  return i < header.size() && header[i] == k_send_to_clients_tag;
}

// The reflection of M is looked up once (each GetReflection() call checks the descriptors).
template <class M>
void clear_unknown_fields(M& m) {
  static const auto* const reflection = M::GetReflection();
  if (!reflection->GetUnknownFields(m).empty()) {
    reflection->MutableUnknownFields(&m)->Clear();
  }
}

// Eight bytes at a time (a client id is 48 or 72).
bool is_ascii(std::string_view s) {
  constexpr std::uint64_t k_high_bits = 0x8080808080808080ULL;
  std::uint64_t any = 0;
  std::size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    std::uint64_t word = 0;
    std::memcpy(&word, s.data() + i, 8);
    any |= word;
  }
  for (; i < s.size(); ++i) {
    any |= static_cast<unsigned char>(s[i]);
  }
  return (any & k_high_bits) == 0;
}

/// When field `field` (a varint; bool: written as 0 or 1) comes next, reads it and passes its
/// value to `set`. False only when it is there and malformed.
template <class Set>
bool optional_uint(pw::reader& r, int field, Set set) {
  std::uint64_t v = 0;
  if (!r.take_tag(pw::tag(field, pw::k_varint))) {
    return true;
  }
  if (!r.varint(v)) {
    return false;
  }
  set(v);
  return true;
}
template <class Set>
bool optional_bool(pw::reader& r, int field, Set set) {
  bool ok = true;
  return optional_uint(r, field,
                       [&](std::uint64_t v) {
                         ok = v <= 1;
                         set(v == 1);
                       }) &&
         ok;
}
/// When field `field` (length-delimited) comes next, passes its bytes to `set`. False only
/// when it is there and malformed.
template <class Set>
bool optional_bytes(pw::reader& r, int field, Set set) {
  std::string_view bytes;
  if (!r.take_tag(pw::tag(field, pw::k_len))) {
    return true;
  }
  return r.bytes(bytes) && set(bytes);
}

/// The worker's steady state: a MESSAGE event as the gateway writes it (gateway
/// make_message_event: event_id, kind, binary, client_id, redelivered, in that order) read
/// into the cleared `ev` without protobuf's parser. False for any other header (`ev` then holds
/// part of it: the caller clears it and lets protobuf parse). The client id must be ASCII here:
/// protobuf checks a string field's UTF-8, and this path accepts nothing protobuf would refuse.
bool read_message_event(std::string_view header, ClientEvent& ev) {
  pw::reader r(header);
  std::uint64_t kind = 0;
  if (!r.take_tag(k_event_tag) || !r.len_to_end() ||
      !optional_uint(r, ClientEvent::kEventIdFieldNumber,
                     [&](std::uint64_t v) { ev.set_event_id(v); }) ||
      !r.take_tag(pw::tag(ClientEvent::kKindFieldNumber, pw::k_varint)) || !r.varint(kind) ||
      kind != link::v2::EVENT_KIND_MESSAGE) {
    return false;
  }
  ev.set_kind(link::v2::EVENT_KIND_MESSAGE);
  return optional_bool(r, ClientEvent::kBinaryFieldNumber, [&](bool b) { ev.set_binary(b); }) &&
         optional_bytes(r, ClientEvent::kClientIdFieldNumber,
                        [&](std::string_view id) {
                          ev.mutable_client_id()->assign(id.data(), id.size());
                          return is_ascii(id);
                        }) &&
         optional_bool(r, ClientEvent::kRedeliveredFieldNumber,
                       [&](bool b) { ev.set_redelivered(b); }) &&
         r.done();
}

/// The gateway's steady state: a send_to_clients command as a worker writes it (optional
/// request_id, the client ids, a message holding at most `binary`: its data is the payload)
/// read into `cmd`, whose SendToClients was cleared, without protobuf's parser. False for any
/// other header, as read_message_event.
bool read_send_to_clients(std::string_view header, Command& cmd) {
  pw::reader r(header);
  if (!r.take_tag(k_command_tag) || !r.len_to_end() ||
      !optional_uint(r, Command::kRequestIdFieldNumber,
                     [&](std::uint64_t v) { cmd.set_request_id(v); }) ||
      !r.take_tag(k_send_to_clients_tag) || !r.len_to_end()) {
    return false;
  }
  auto& op = *cmd.mutable_send_to_clients();
  const char id_tag = pw::tag(SendToClients::kClientIdsFieldNumber, pw::k_len);
  std::string_view id;
  while (r.take_tag(id_tag)) {
    if (!r.bytes(id)) {
      return false;
    }
    op.add_client_ids()->assign(id.data(), id.size());
  }
  bool has_message = false;
  const bool ok = optional_bytes(r, SendToClients::kMessageFieldNumber,
                                 [&](std::string_view bytes) {
                                   has_message = true;
                                   pw::reader m(bytes);
                                   auto& message = *op.mutable_message();
                                   return optional_bool(m, link::v2::Message::kBinaryFieldNumber,
                                                        [&](bool b) { message.set_binary(b); }) &&
                                          m.done();
                                 }) &&
                  r.done();
  if (ok && !has_message) {
    op.clear_message();  // the one kept from the previous command
  }
  return ok;
}

/// What the steady-state paths start from: a cleared event, or a command whose SendToClients
/// is cleared (their strings keep their capacity).
void clear_event(Frame& frame) {
  frame.mutable_event()->Clear();
  clear_unknown_fields(frame);
}
/// With `keep_message` the SendToClients keeps its Message, cleared, where Clear() would delete
/// it: read_send_to_clients reuses it, and drops it when the header has none.
void clear_send_to_clients(Frame& frame, bool keep_message) {
  auto* command = frame.mutable_command();
  auto* op = command->mutable_send_to_clients();
  if (keep_message && op->has_message()) {
    op->mutable_client_ids()->Clear();
    op->mutable_message()->Clear();
    clear_unknown_fields(*op);
  } else {
    op->Clear();
  }
  command->set_request_id(0);
  clear_unknown_fields(*command);
  clear_unknown_fields(frame);
}

std::size_t send_to_client_lengths(std::string_view client_id, bool binary, std::size_t& command,
                                   std::size_t& op) {
  op = pw::len_field_size(client_id.size()) + pw::len_field_size(binary ? 2 : 0);
  command = pw::len_field_size(op);
  return pw::len_field_size(command);
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
  // Clear() keeps its strings' capacity, so parsing it allocates nothing. Likewise a command
  // that sends to clients after another (the gateway's steady state: replies and pushes) keeps
  // the Command, its SendToClients, its Message and the strings of its client ids. The usual
  // shapes of both are read without protobuf's parser (see read_message_event); any other
  // header starts from a cleared frame. Either way the frame holds exactly what the header says.
  if (frame.body_case() == Frame::kEvent && r.header[0] == k_event_tag) {
    clear_event(frame);
    if (read_message_event(r.header, *frame.mutable_event())) {
      return r;
    }
    clear_event(frame);
  } else if (frame.body_case() == Frame::kCommand &&
             frame.command().op_case() == Command::kSendToClients && is_send_to_clients(r.header)) {
    clear_send_to_clients(frame, true);
    if (read_send_to_clients(r.header, *frame.mutable_command())) {
      return r;
    }
    clear_send_to_clients(frame, false);
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

std::size_t send_to_client_size(std::string_view client_id, bool binary, std::size_t payload_size) {
  std::size_t command = 0;
  std::size_t op = 0;
  return k_prefix_size + send_to_client_lengths(client_id, binary, command, op) + payload_size;
}

void encode_send_to_client(std::string& out, std::string_view client_id, bool binary,
                           std::string_view payload) {
  std::size_t command = 0;
  std::size_t op = 0;
  const std::size_t header_len = send_to_client_lengths(client_id, binary, command, op);
  const std::size_t pos = out.size();
  out.resize(pos + k_prefix_size + header_len);
  char* p = out.data() + pos;
  write_u32(p, static_cast<std::uint32_t>(header_len + payload.size()));
  write_u32(p + 4, static_cast<std::uint32_t>(header_len));
  p += k_prefix_size;
  pw::put_len(p, Frame::kCommandFieldNumber, command);
  pw::put_len(p, Command::kSendToClientsFieldNumber, op);
  pw::put_bytes_always(p, SendToClients::kClientIdsFieldNumber, client_id);
  pw::put_len(p, SendToClients::kMessageFieldNumber, binary ? 2 : 0);
  if (binary) {
    *p++ = pw::tag(link::v2::Message::kBinaryFieldNumber, pw::k_varint);
    *p++ = 1;
  }
  out.append(payload.data(), payload.size());
}

namespace {
// A send's message data; with `create` false, null when the send has no message.
template <class Op>
std::string* message_data(Op& op, bool create) {
  return create || op.has_message() ? op.mutable_message()->mutable_data() : nullptr;
}

std::string* payload_field(link::v2::Frame& frame, bool create) {
  if (frame.body_case() == Frame::kEvent) {
    return frame.mutable_event()->mutable_payload();
  }
  if (frame.body_case() != Frame::kCommand) {
    return nullptr;
  }
  auto& c = *frame.mutable_command();
  switch (c.op_case()) {
    case Command::kSendToClients:
      return message_data(*c.mutable_send_to_clients(), create);
    case Command::kSendToAll:
      return message_data(*c.mutable_send_to_all(), create);
    case Command::kSendToGroups:
      return message_data(*c.mutable_send_to_groups(), create);
    case Command::kSendToUids:
      return message_data(*c.mutable_send_to_uids(), create);
    case Command::kCloseClient:
      return c.close_client().has_final_message()
                 ? c.mutable_close_client()->mutable_final_message()->mutable_data()
                 : nullptr;
    default:
      return nullptr;
  }
}
}  // namespace

std::string* payload_field(link::v2::Frame& frame) {
  return payload_field(frame, true);
}

std::string detach_payload(link::v2::Frame& frame) {
  std::string out;
  if (auto* field = payload_field(frame)) {
    out.swap(*field);
  }
  return out;
}

bool attach_payload(link::v2::Frame& frame, std::string_view payload) {
  // The field ends up holding exactly the payload, even when a peer wrote bytes into the
  // header's own field (empty on the wire by the format); an empty payload adds no message to
  // a send that has none.
  auto* field = payload_field(frame, !payload.empty());
  if (field == nullptr) {
    return payload.empty();
  }
  field->assign(payload.data(), payload.size());
  return true;
}

}  // namespace gwx::link_codec
