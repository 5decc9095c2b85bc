#include "tools/bench/payload.hpp"

namespace gwx::bench {
namespace {

constexpr char k_hex[] = "0123456789abcdef";
constexpr std::size_t k_seq_digits = 8;
constexpr std::size_t k_time_digits = 12;

void put_hex(char* out, std::uint64_t value, std::size_t digits) {
  for (std::size_t i = digits; i-- > 0;) {
    out[i] = k_hex[value & 0xf];
    value >>= 4;
  }
}

bool get_hex(const char* in, std::size_t digits, std::uint64_t& value) {
  value = 0;
  for (std::size_t i = 0; i < digits; ++i) {
    const char c = in[i];
    unsigned nibble = 0;
    if (c >= '0' && c <= '9') {
      nibble = static_cast<unsigned>(c - '0');
    } else if (c >= 'a' && c <= 'f') {
      nibble = static_cast<unsigned>(c - 'a' + 10);
    } else {
      return false;
    }
    value = (value << 4) | nibble;
  }
  return true;
}

char filler(std::uint32_t seq, std::size_t i) {
  return static_cast<char>('A' + (seq + i) % 26);
}

}  // namespace

void payload::write(std::string& out, std::size_t size, std::uint32_t seq, std::uint64_t sent_ns) {
  const std::size_t start = out.size();
  out.resize(start + size);
  char* p = out.data() + start;
  put_hex(p, seq, k_seq_digits);
  put_hex(p + k_seq_digits, sent_ns, k_time_digits);
  for (std::size_t i = k_seq_digits + k_time_digits; i < size; ++i) {
    p[i] = filler(seq, i);
  }
}

payload::fields payload::read(std::string_view in, std::size_t size) {
  fields f;
  if (in.size() != size || size < k_min_size) {
    return f;
  }
  std::uint64_t seq = 0;
  if (!get_hex(in.data(), k_seq_digits, seq) ||
      !get_hex(in.data() + k_seq_digits, k_time_digits, f.sent_ns)) {
    return f;
  }
  f.seq = static_cast<std::uint32_t>(seq);
  for (std::size_t i = k_seq_digits + k_time_digits; i < size; ++i) {
    if (in[i] != filler(f.seq, i)) {
      return f;
    }
  }
  f.ok = true;
  return f;
}

}  // namespace gwx::bench
