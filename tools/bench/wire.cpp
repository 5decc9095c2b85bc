#include "tools/bench/wire.hpp"

#include <openssl/evp.h>

#include <cctype>
#include <stdexcept>

#include "common/codec/length_prefix.hpp"
#include "common/codec/line.hpp"
#include "common/codec/ws_handshake.hpp"
#include "common/net/endpoint.hpp"

namespace gwx::bench {
namespace {

constexpr std::size_t k_max_response_head = 8192;

wire_event from_decode(const codec::decode_result& r) {
  wire_event ev;
  switch (r.status) {
    case codec::decode_status::need_more:
      break;
    case codec::decode_status::message:
      ev.type = wire_event::kind::message;
      ev.consumed = r.consumed;
      ev.data = r.payload;
      break;
    case codec::decode_status::error:
      ev.type = wire_event::kind::error;
      ev.data = r.reason;
      break;
  }
  return ev;
}

}  // namespace

message_decoder::message_decoder(protocol proto, side s, std::size_t max_message,
                                 std::size_t raw_chunk)
    : proto_(proto), max_message_(max_message), raw_chunk_(raw_chunk) {
  if (proto_ == protocol::ws) {
    frames_.emplace(max_message,
                    s == side::server ? codec::ws::role::server : codec::ws::role::client);
  }
}

wire_event message_decoder::next(char* data, std::size_t size) {
  switch (proto_) {
    case protocol::ws: {
      using kind = codec::ws::frame_event::kind;
      const auto f = frames_->next(data, size);
      wire_event ev;
      ev.consumed = f.consumed;
      ev.data = f.data;
      ev.binary = f.binary;
      ev.close_code = f.close_code;
      switch (f.type) {
        case kind::need_more:
          break;
        case kind::message:
          ev.type = wire_event::kind::message;
          break;
        case kind::ping:
          ev.type = wire_event::kind::ping;
          break;
        case kind::pong:
          ev.type = wire_event::kind::skip;
          break;
        case kind::close:
          ev.type = wire_event::kind::close;
          break;
        case kind::error:
          ev.type = wire_event::kind::error;
          ev.data = f.reason;
          break;
      }
      return ev;
    }
    case protocol::tcp_line:
      return from_decode(codec::line::decode(std::string_view(data, size), max_message_));
    case protocol::tcp_frame:
      return from_decode(codec::length_prefix::decode(std::string_view(data, size), max_message_));
    case protocol::tcp_raw: {
      wire_event ev;
      const std::size_t n = raw_chunk_ == 0 ? size : (size >= raw_chunk_ ? raw_chunk_ : 0);
      if (n > 0) {
        ev.type = wire_event::kind::message;
        ev.consumed = n;
        ev.data = std::string_view(data, n);
      }
      return ev;
    }
  }
  return {};
}

void encode_message(std::string& out, protocol proto, side s, std::string_view payload, bool binary,
                    std::uint32_t mask_key) {
  switch (proto) {
    case protocol::ws: {
      const auto op = binary ? codec::ws::opcode::binary : codec::ws::opcode::text;
      if (s == side::client) {
        codec::ws::encode_masked_frame(out, op, payload, mask_key);
      } else {
        codec::ws::encode_frame(out, op, payload);
      }
      return;
    }
    case protocol::tcp_line:
      codec::line::encode(out, payload);
      return;
    case protocol::tcp_frame:
      codec::length_prefix::encode(out, payload);
      return;
    case protocol::tcp_raw:
      out.append(payload);
      return;
  }
}

void encode_control(std::string& out, side s, codec::ws::opcode op, std::string_view body,
                    std::uint32_t mask_key) {
  if (s == side::client) {
    codec::ws::encode_masked_frame(out, op, body, mask_key);
  } else {
    codec::ws::encode_frame(out, op, body);
  }
}

std::string make_upgrade_request(const target_url& url, std::uint64_t seed, std::string& key) {
  unsigned char raw[16];
  for (auto& byte : raw) {
    seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
    byte = static_cast<unsigned char>(seed >> 56);
  }
  unsigned char b64[32] = {};
  const int n = EVP_EncodeBlock(b64, raw, sizeof raw);
  key.assign(reinterpret_cast<const char*>(b64), static_cast<std::size_t>(n));
  return "GET " + url.path + " HTTP/1.1\r\nHost: " + format_host_port(url.host, url.port) +
         "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key +
         "\r\nSec-WebSocket-Version: 13\r\n\r\n";
}

std::size_t check_upgrade_response(std::string_view in, const std::string& key) {
  const auto end = in.find("\r\n\r\n");
  if (end == std::string_view::npos) {
    if (in.size() > k_max_response_head) {
      throw std::runtime_error("upgrade response head larger than 8 KiB");
    }
    return 0;
  }
  const auto head = in.substr(0, end + 2);
  const auto status_line = head.substr(0, head.find("\r\n"));
  if (status_line.rfind("HTTP/1.1 101", 0) != 0) {
    throw std::runtime_error("upgrade refused: '" + std::string(status_line) + "'");
  }
  auto rest = head.substr(status_line.size());
  while (!rest.empty()) {
    rest.remove_prefix(2);  // "\r\n"
    const auto line = rest.substr(0, rest.find("\r\n"));
    rest.remove_prefix(line.size());
    const auto colon = line.find(':');
    if (colon == std::string_view::npos) {
      continue;
    }
    std::string name(line.substr(0, colon));
    for (auto& c : name) {
      c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    auto value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) {
      value.remove_prefix(1);
    }
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) {
      value.remove_suffix(1);
    }
    if (name == "sec-websocket-accept") {
      if (value != codec::ws::make_accept_key(key)) {
        throw std::runtime_error("upgrade response with a wrong Sec-WebSocket-Accept");
      }
      return end + 4;
    }
  }
  throw std::runtime_error("upgrade response without the right Sec-WebSocket-Accept");
}

}  // namespace gwx::bench
