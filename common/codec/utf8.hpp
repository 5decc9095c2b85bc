#pragma once

#include <cstdint>
#include <string_view>

namespace gwx::codec {

/// Incremental UTF-8 validator: accepts exactly the well-formed sequences of Unicode 15 table 3-7
/// (no overlongs, no surrogates, nothing above U+10FFFF), so a text message may be checked one
/// fragment at a time and rejected at the first byte that makes it invalid. Thread-compatible.
class utf8_validator {
 public:
  /// Feeds bytes; false as soon as the input can no longer be valid UTF-8 (and from then on).
  bool feed(std::string_view bytes);
  /// True when everything fed so far is complete, valid UTF-8 (no partial sequence pending).
  bool complete() const { return !failed_ && remaining_ == 0; }
  /// True once an invalid byte has been seen.
  bool failed() const { return failed_; }
  /// Forgets everything fed so far.
  void reset();

 private:
  std::uint8_t remaining_ = 0;  // continuation bytes still expected
  std::uint8_t low_ = 0x80;     // allowed range of the next continuation byte
  std::uint8_t high_ = 0xbf;
  bool failed_ = false;
};

/// True when `bytes` is complete, valid UTF-8.
bool is_valid_utf8(std::string_view bytes);

}  // namespace gwx::codec
