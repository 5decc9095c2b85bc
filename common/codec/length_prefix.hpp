#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/codec/decode_result.hpp"

namespace gwx::codec {

/// 4-byte big-endian length prefix + payload: the `tcp+frame` client framing and the
/// gateway <-> worker link envelope. Sans-I/O, stateless; thread-compatible.
class length_prefix {
 public:
  static constexpr std::size_t k_header = 4;

  /// Decodes at most one message from the front of `in`. A declared length above `max_size`
  /// is an error before anything is allocated.
  static decode_result decode(std::string_view in, std::size_t max_size);

  /// Appends header and payload to `out`.
  static void encode(std::string& out, std::string_view payload);

  /// Writes a 4-byte big-endian length at `out[pos..pos+4)` (for encoders that serialize in
  /// place after reserving the header).
  static void patch_header(std::string& out, std::size_t pos, std::uint32_t length);
};

}  // namespace gwx::codec
