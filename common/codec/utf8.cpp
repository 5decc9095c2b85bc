#include "common/codec/utf8.hpp"

#include <cstring>

namespace gwx::codec {

namespace {

constexpr std::uint64_t k_high_bits = 0x8080808080808080ULL;

}  // namespace

bool utf8_validator::feed(std::string_view bytes) {
  if (failed_) {
    return false;
  }
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  const auto* const end = p + bytes.size();
  while (p != end) {
    if (remaining_ == 0) {
      // Text is mostly ASCII: skip it eight bytes at a time.
      while (end - p >= 8) {
        std::uint64_t word;
        std::memcpy(&word, p, sizeof word);
        if ((word & k_high_bits) != 0) {
          break;
        }
        p += 8;
      }
      if (p == end) {
        break;
      }
      const unsigned char c = *p++;
      if (c < 0x80) {
        continue;
      }
      // Lead byte: how many continuation bytes follow and which range the first one may take
      // (the narrowed ranges exclude overlongs, surrogates and code points above U+10FFFF).
      low_ = 0x80;
      high_ = 0xbf;
      if (c >= 0xc2 && c <= 0xdf) {
        remaining_ = 1;
      } else if (c >= 0xe0 && c <= 0xef) {
        remaining_ = 2;
        if (c == 0xe0) {
          low_ = 0xa0;
        } else if (c == 0xed) {
          high_ = 0x9f;
        }
      } else if (c >= 0xf0 && c <= 0xf4) {
        remaining_ = 3;
        if (c == 0xf0) {
          low_ = 0x90;
        } else if (c == 0xf4) {
          high_ = 0x8f;
        }
      } else {
        failed_ = true;
        return false;
      }
      continue;
    }
    const unsigned char c = *p++;
    if (c < low_ || c > high_) {
      failed_ = true;
      return false;
    }
    low_ = 0x80;
    high_ = 0xbf;
    --remaining_;
  }
  return true;
}

void utf8_validator::reset() {
  *this = utf8_validator{};
}

bool is_valid_utf8(std::string_view bytes) {
  utf8_validator v;
  return v.feed(bytes) && v.complete();
}

}  // namespace gwx::codec
