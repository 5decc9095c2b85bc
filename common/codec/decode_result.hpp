#pragma once

#include <cstddef>
#include <string_view>

namespace gwx::codec {

/// Outcome of offering buffered bytes to a stream decoder.
enum class decode_status {
  need_more,  ///< not a whole message yet; call again with more bytes
  message,    ///< `payload` holds one message; drop `consumed` bytes afterwards
  error,      ///< the stream is broken; `reason` says why; close the connection
};

/// Result of one decode step. `payload` points into the caller's buffer.
struct decode_result {
  decode_status status = decode_status::need_more;
  std::size_t consumed = 0;
  std::string_view payload;
  const char* reason = "";
};

}  // namespace gwx::codec
