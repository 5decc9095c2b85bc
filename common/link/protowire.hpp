#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

/// The protobuf wire format, for the few link headers written and read without a message object
/// (the hot frames: a client's message going to a worker, a worker's reply to one client).
/// Writers produce byte for byte what protobuf writes for the same message (fields in number
/// order; proto3 leaves out empty and zero values); readers accept that canonical form and
/// nothing else, so that a caller falls back to protobuf's parser for any other spelling of the
/// same message. The link codec's tests and fuzz target compare both ways with protobuf.
namespace gwx::protowire {

inline constexpr std::uint8_t k_varint = 0;
inline constexpr std::uint8_t k_len = 2;

/// A one-byte tag (fields 1..15).
constexpr char tag(int field, std::uint8_t type) {
  return static_cast<char>((field << 3) | type);
}

inline std::size_t varint_size(std::uint64_t v) {
  std::size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

/// A length-delimited field of `len` bytes with a one-byte tag.
inline std::size_t len_field_size(std::size_t len) {
  return 1 + varint_size(len) + len;
}
/// A proto3 bytes/string field (left out when empty).
inline std::size_t bytes_size(std::string_view s) {
  return s.empty() ? 0 : len_field_size(s.size());
}
/// A proto3 integer field (left out when zero).
inline std::size_t uint_size(std::uint64_t v) {
  return v == 0 ? 0 : 1 + varint_size(v);
}

// Writers advance `p` through a buffer sized beforehand (no capacity check per byte).
inline void put_varint(char*& p, std::uint64_t v) {
  while (v >= 0x80) {
    *p++ = static_cast<char>(v | 0x80);
    v >>= 7;
  }
  *p++ = static_cast<char>(v);
}
inline void put_len(char*& p, int field, std::size_t len) {
  *p++ = tag(field, k_len);
  put_varint(p, len);
}
/// Writes `s` even when empty (an element of a repeated field).
inline void put_bytes_always(char*& p, int field, std::string_view s) {
  put_len(p, field, s.size());
  std::memcpy(p, s.data(), s.size());
  p += s.size();
}
inline void put_bytes(char*& p, int field, std::string_view s) {
  if (!s.empty()) {
    put_bytes_always(p, field, s);
  }
}
inline void put_uint(char*& p, int field, std::uint64_t v) {
  if (v != 0) {
    *p++ = tag(field, k_varint);
    put_varint(p, v);
  }
}

/// Reads the canonical encoding of protobuf fields from a view, front to back.
class reader {
 public:
  explicit reader(std::string_view in) : in_(in) {}

  bool done() const { return pos_ == in_.size(); }
  /// The next byte is `t` (a one-byte tag); consumes it if so.
  bool take_tag(char t) {
    if (pos_ < in_.size() && in_[pos_] == t) {
      ++pos_;
      return true;
    }
    return false;
  }
  /// A varint of at most 10 bytes whose value fits 64 bits.
  bool varint(std::uint64_t& v) {
    v = 0;
    for (int shift = 0; shift < 64 && pos_ < in_.size(); shift += 7) {
      const auto b = static_cast<unsigned char>(in_[pos_++]);
      if (shift == 63 && b > 1) {
        return false;
      }
      v |= static_cast<std::uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) {
        return true;
      }
    }
    return false;
  }
  /// A length and that many bytes.
  bool bytes(std::string_view& out) {
    std::uint64_t len = 0;
    if (!varint(len) || len > in_.size() - pos_) {
      return false;
    }
    out = in_.substr(pos_, static_cast<std::size_t>(len));
    pos_ += static_cast<std::size_t>(len);
    return true;
  }
  /// A length that covers exactly the rest of the input (a message's only field).
  bool len_to_end() {
    std::uint64_t len = 0;
    return varint(len) && len == in_.size() - pos_;
  }

 private:
  std::string_view in_;
  std::size_t pos_ = 0;
};

}  // namespace gwx::protowire
