#include "common/client_id.hpp"

#include <arpa/inet.h>
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
  // Digits are checked all at once (any -1 sets the sign bit of `bad`): no branch per digit.
  std::uint64_t v = 0;
  int bad = 0;
  for (const char c : id.substr(id.size() - 16)) {
    const int d = hex_value(c);
    bad |= d;
    v = (v << 4) | static_cast<std::uint64_t>(d & 0xf);
  }
  if (bad < 0) {
    return std::nullopt;
  }
  return v;
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
