#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "common/codec/decode_result.hpp"

namespace gwx::codec {

/// `tcp+line` framing: each message ends in "\n"; a "\r" before it is dropped. Sans-I/O,
/// stateless; thread-compatible.
class line {
 public:
  /// Decodes at most one message from the front of `in`. More than `max_size` bytes without a
  /// newline is an error (the limit applies to the message without its terminator).
  static decode_result decode(std::string_view in, std::size_t max_size);

  /// Appends `payload` and "\n" to `out`.
  static void encode(std::string& out, std::string_view payload);
};

}  // namespace gwx::codec
