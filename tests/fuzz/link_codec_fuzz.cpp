// libFuzzer target for the link wire format (common/link/link_codec.hpp). Input: byte 0 picks
// the limits (top bit: handshake limits) and byte 1 the chunk size the wire is fed in; the rest
// is the wire, preamble first. Checks that feeding in chunks and all at once agree, that no
// frame exceeds its limits, that the one Frame decoded into holds exactly what a fresh parse of
// each header gives (the steady-state readers that skip protobuf's parser included), that a
// payload moves into its field and back unchanged, and that a reply to one client encoded
// without a Frame (encode_send_to_client) is byte for byte the decoded frame's encode().
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "common/link/link_codec.hpp"

namespace {

using gwx::codec::decode_status;
namespace lc = gwx::link_codec;

void check(bool ok) {
  if (!ok) {
    std::abort();
  }
}

struct outcome {
  std::vector<std::string> frames;  // header + payload, as decoded
  bool error = false;

  bool operator==(const outcome&) const = default;
};

// A decoded send to exactly one client, as a worker writes it: encoding it without the frame
// gives what protobuf gives.
void check_reply_encoding(const gwx::link::v2::Frame& frame, std::string_view payload) {
  if (frame.body_case() != gwx::link::v2::Frame::kCommand) {
    return;
  }
  const auto& command = frame.command();
  const auto& op = command.send_to_clients();
  if (command.op_case() != gwx::link::v2::Command::kSendToClients || command.request_id() != 0 ||
      op.client_ids_size() != 1 || !op.has_message() || !op.message().data().empty() ||
      frame.ByteSizeLong() !=
          lc::send_to_client_size(op.client_ids(0), op.message().binary(), 0) - lc::k_prefix_size) {
    return;  // another command, or unknown fields kept from the header
  }
  std::string direct;
  std::string framed;
  lc::encode_send_to_client(direct, op.client_ids(0), op.message().binary(), payload);
  lc::encode(framed, frame, payload);
  check(direct == framed);
}

outcome run(std::string_view wire, std::size_t chunk, const lc::limits& lim) {
  outcome out;
  std::string buf;
  bool preamble = false;
  gwx::link::v2::Frame frame;
  for (std::size_t fed = 0; fed < wire.size() && !out.error;) {
    const std::size_t n = std::min(chunk, wire.size() - fed);
    buf.append(wire.substr(fed, n));
    fed += n;
    while (!out.error) {
      if (!preamble) {
        const auto r = lc::check_preamble(buf);
        if (r.status == decode_status::need_more) {
          break;
        }
        if (r.status == decode_status::error) {
          out.error = true;
          break;
        }
        preamble = true;
        buf.erase(0, r.consumed);
        continue;
      }
      const auto r = lc::decode(buf, lim, frame);
      if (r.status == decode_status::need_more) {
        break;
      }
      if (r.status == decode_status::error) {
        out.error = true;
        break;
      }
      check(r.header.size() <= lim.max_header);
      check(r.header.size() + r.payload.size() <= lim.max_frame);
      check(r.consumed == lc::k_prefix_size + r.header.size() + r.payload.size());
      // The frame reused across decodes holds what a fresh one parsed from the header would.
      gwx::link::v2::Frame fresh;
      check(fresh.ParseFromArray(r.header.data(), static_cast<int>(r.header.size())));
      check(fresh.SerializeAsString() == frame.SerializeAsString());
      // The payload moves into the frame and back out unchanged when the kind carries one.
      const std::string payload(r.payload);
      if (lc::attach_payload(frame, payload)) {
        check(lc::detach_payload(frame) == payload);
      }
      check_reply_encoding(frame, payload);
      out.frames.push_back(std::string(r.header) + payload);
      buf.erase(0, r.consumed);
    }
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) {
    return 0;
  }
  const bool handshake = (data[0] & 0x80) != 0;
  const std::size_t limit = 16 + (data[0] & 0x7f) * 64;
  const lc::limits lim = handshake ? lc::k_handshake_limits : lc::limits{limit, limit};
  const std::size_t chunk = 1 + data[1];
  const std::string_view wire(reinterpret_cast<const char*>(data) + 2, size - 2);
  const auto whole = run(wire, wire.size() + 1, lim);
  const auto pieces = run(wire, chunk, lim);
  check(whole == pieces);
  return 0;
}
