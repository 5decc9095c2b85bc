#include "common/link_auth.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <stdexcept>

namespace gwx::link_auth {
namespace {

std::string hmac(std::string_view key, std::string_view label, std::string_view a,
                 std::string_view b) {
  std::string data;
  data.reserve(label.size() + a.size() + b.size());
  data.append(label).append(a).append(b);
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
           reinterpret_cast<const unsigned char*>(data.data()), data.size(), out,
           &len) == nullptr) {
    throw std::runtime_error("HMAC-SHA256 failed");
  }
  return std::string(reinterpret_cast<const char*>(out), len);
}

}  // namespace

std::string make_nonce() {
  std::string nonce(16, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(nonce.data()), 16) != 1) {
    throw std::runtime_error("no randomness available for link nonce");
  }
  return nonce;
}

bool equal(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string hmac_sha256(std::string_view key, std::string_view data) {
  return hmac(key, "", data, "");
}

std::string hmac_hex(std::string_view key, std::string_view data) {
  static constexpr char k_hex[] = "0123456789abcdef";
  const std::string mac = hmac(key, "", data, "");
  std::string out;
  out.reserve(mac.size() * 2);
  for (unsigned char c : mac) {
    out.push_back(k_hex[c >> 4]);
    out.push_back(k_hex[c & 0xf]);
  }
  return out;
}

}  // namespace gwx::link_auth
