#include "common/codec/length_prefix.hpp"

namespace gwx::codec {

decode_result length_prefix::decode(std::string_view in, std::size_t max_size) {
  decode_result r;
  if (in.size() < k_header) {
    return r;
  }
  const auto* p = reinterpret_cast<const unsigned char*>(in.data());
  const std::uint64_t len = (std::uint64_t{p[0]} << 24) | (std::uint64_t{p[1]} << 16) |
                            (std::uint64_t{p[2]} << 8) | std::uint64_t{p[3]};
  if (len > max_size) {
    r.status = decode_status::error;
    r.reason = "frame larger than the maximum message size";
    return r;
  }
  if (in.size() - k_header < len) {
    return r;
  }
  r.status = decode_status::message;
  r.consumed = k_header + static_cast<std::size_t>(len);
  r.payload = in.substr(k_header, static_cast<std::size_t>(len));
  return r;
}

void length_prefix::patch_header(std::string& out, std::size_t pos, std::uint32_t length) {
  out[pos] = static_cast<char>((length >> 24) & 0xff);
  out[pos + 1] = static_cast<char>((length >> 16) & 0xff);
  out[pos + 2] = static_cast<char>((length >> 8) & 0xff);
  out[pos + 3] = static_cast<char>(length & 0xff);
}

void length_prefix::encode(std::string& out, std::string_view payload) {
  const auto pos = out.size();
  out.append(k_header, '\0');
  patch_header(out, pos, static_cast<std::uint32_t>(payload.size()));
  out.append(payload);
}

}  // namespace gwx::codec
