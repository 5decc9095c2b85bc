#include "common/client_id.hpp"

#include <arpa/inet.h>
#include <endian.h>
#include <openssl/rand.h>

#include <array>
#include <chrono>
#include <cstring>
#include <stdexcept>

#include "common/net/endpoint.hpp"

namespace gwx {
namespace {

constexpr std::uint8_t k_version = 1;
constexpr char k_hex[] = "0123456789abcdef";

void put_u64(std::string& out, std::uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8) {
    out.push_back(static_cast<char>((v >> shift) & 0xff));
  }
}

std::uint64_t get_u64(const unsigned char* p) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) {
    v = (v << 8) | p[i];
  }
  return v;
}

// Value of each lowercase hex digit, -1 for every other byte: client ids are parsed on every
// command, so a digit costs one load instead of two range checks.
constexpr std::array<std::int8_t, 256> k_hex_values = [] {
  std::array<std::int8_t, 256> t{};
  t.fill(-1);
  for (int i = 0; i < 16; ++i) {
    t[static_cast<unsigned char>(k_hex[i])] = static_cast<std::int8_t>(i);
  }
  return t;
}();

int hex_value(char c) {
  return k_hex_values[static_cast<unsigned char>(c)];
}

// Eight lowercase hex digits to their value, all bytes at once (SWAR): false for any other
// byte. Each test below keeps every byte's arithmetic inside its own byte: no carry crosses.
bool hex8(const char* p, std::uint32_t& value) {
  constexpr std::uint64_t k_ones = 0x0101010101010101ULL;
  constexpr std::uint64_t k_high = 0x8080808080808080ULL;
  std::uint64_t x = 0;
  std::memcpy(&x, p, sizeof x);
  x = be64toh(x);  // the first digit in the top byte
  // Per byte b < 0x80: b + (0x80 - n) has its high bit set exactly when b >= n.
  const auto at_least = [x](unsigned n) { return (x + k_ones * (0x80 - n)) & k_high; };
  const std::uint64_t digit = at_least('0') & ~at_least('9' + 1);
  const std::uint64_t letter = at_least('a') & ~at_least('f' + 1);
  if ((x & k_high) != 0 || (digit | letter) != k_high) {
    return false;
  }
  // '0'..'9' and 'a'..'f' keep their value (minus 9 for letters) in the low nibble.
  std::uint64_t n = (x & (k_ones * 0x0f)) + (letter >> 7) * 9;
  n = (n | (n >> 4)) & 0x00ff00ff00ff00ffULL;  // two digits per 16 bits
  n = (n | (n >> 8)) & 0x0000ffff0000ffffULL;  // four per 32
  n = (n | (n >> 16)) & 0xffffffffULL;         // eight
  value = static_cast<std::uint32_t>(n);
  return true;
}

}  // namespace

std::string make_client_id(std::string_view ip, std::uint16_t port, std::uint64_t epoch,
                           std::uint64_t connection) {
  const std::string ip_str(ip);
  std::string raw;
  raw.push_back(static_cast<char>(k_version));
  std::array<unsigned char, 16> addr{};
  if (inet_pton(AF_INET, ip_str.c_str(), addr.data()) == 1) {
    raw.push_back(4);
    raw.append(reinterpret_cast<const char*>(addr.data()), 4);
  } else if (inet_pton(AF_INET6, ip_str.c_str(), addr.data()) == 1) {
    raw.push_back(6);
    raw.append(reinterpret_cast<const char*>(addr.data()), 16);
  } else {
    return {};
  }
  raw.push_back(static_cast<char>(port >> 8));
  raw.push_back(static_cast<char>(port & 0xff));
  put_u64(raw, epoch);
  put_u64(raw, connection);
  std::string out;
  out.reserve(raw.size() * 2);
  for (unsigned char c : raw) {
    out.push_back(k_hex[c >> 4]);
    out.push_back(k_hex[c & 0xf]);
  }
  return out;
}

std::optional<client_id_parts> parse_client_id(std::string_view id) {
  if (id.size() != 48 && id.size() != 72) {
    return std::nullopt;
  }
  std::array<unsigned char, 36> raw{};
  for (std::size_t i = 0; i < id.size(); i += 2) {
    const int hi = hex_value(id[i]);
    const int lo = hex_value(id[i + 1]);
    if (hi < 0 || lo < 0) {
      return std::nullopt;
    }
    raw[i / 2] = static_cast<unsigned char>((hi << 4) | lo);
  }
  const std::size_t n = id.size() / 2;
  if (raw[0] != k_version) {
    return std::nullopt;
  }
  const std::size_t ip_len = raw[1] == 4 ? 4 : raw[1] == 6 ? 16 : 0;
  if (ip_len == 0 || n != 2 + ip_len + 2 + 8 + 8) {
    return std::nullopt;
  }
  char text[INET6_ADDRSTRLEN] = {};
  if (inet_ntop(ip_len == 4 ? AF_INET : AF_INET6, raw.data() + 2, text, sizeof text) == nullptr) {
    return std::nullopt;
  }
  const unsigned char* p = raw.data() + 2 + ip_len;
  const auto port = static_cast<std::uint16_t>((p[0] << 8) | p[1]);
  client_id_parts out;
  out.gateway_address = format_host_port(text, port);
  out.epoch = get_u64(p + 2);
  out.connection = get_u64(p + 10);
  return out;
}

std::optional<std::uint64_t> client_id_connection(std::string_view id) {
  if (id.size() != 48 && id.size() != 72) {
    return std::nullopt;
  }
  // The last 16 digits, eight at a time (this runs for every command and event of a link).
  std::uint32_t hi = 0;
  std::uint32_t lo = 0;
  if (!hex8(id.data() + id.size() - 16, hi) || !hex8(id.data() + id.size() - 8, lo)) {
    return std::nullopt;
  }
  return (std::uint64_t{hi} << 32) | lo;
}

std::string client_id_prefix(std::string_view ip, std::uint16_t port, std::uint64_t epoch) {
  auto id = make_client_id(ip, port, epoch, 0);
  if (!id.empty()) {
    id.resize(id.size() - 16);
  }
  return id;
}

std::string epoch_to_hex(std::uint64_t epoch) {
  std::string out(16, '0');
  for (int i = 15; i >= 0; --i) {
    out[static_cast<std::size_t>(i)] = k_hex[epoch & 0xf];
    epoch >>= 4;
  }
  return out;
}

std::uint64_t new_epoch() {
  std::uint64_t v = 0;
  if (RAND_bytes(reinterpret_cast<unsigned char*>(&v), sizeof v) != 1) {
    // Never fall back silently to something guessable-and-repeatable: mix in the clock.
    v = static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  }
  return v == 0 ? 1 : v;
}

}  // namespace gwx
