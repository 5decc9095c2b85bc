#include "common/codec/line.hpp"

namespace gwx::codec {

decode_result line::decode(std::string_view in, std::size_t max_size) {
  decode_result r;
  // A message of max_size bytes may be followed by "\r\n": look that far and no further.
  const auto window = in.substr(0, max_size + 2);
  const auto nl = window.find('\n');
  if (nl == std::string_view::npos) {
    if (in.size() > max_size + 1 || (in.size() == max_size + 1 && in.back() != '\r')) {
      r.status = decode_status::error;
      r.reason = "line longer than the maximum message size";
    }
    return r;
  }
  std::size_t len = nl;
  if (len > 0 && in[len - 1] == '\r') {
    --len;
  }
  if (len > max_size) {
    r.status = decode_status::error;
    r.reason = "line longer than the maximum message size";
    return r;
  }
  r.status = decode_status::message;
  r.consumed = nl + 1;
  r.payload = in.substr(0, len);
  return r;
}

void line::encode(std::string& out, std::string_view payload) {
  out.append(payload);
  out.push_back('\n');
}

}  // namespace gwx::codec
