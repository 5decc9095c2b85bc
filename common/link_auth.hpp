#pragma once

#include <string>
#include <string_view>

namespace gwx {

/// The HMAC and nonce primitives behind the link handshake (common/link/link_handshake.hpp)
/// and register tokens. The secret itself never crosses the wire. Pure functions; thread-safe.
namespace link_auth {

/// 16 random bytes from the OS.
std::string make_nonce();

/// Constant-time equality (length is not secret).
bool equal(std::string_view a, std::string_view b);

/// HMAC-SHA256(key, data), 32 raw bytes.
std::string hmac_sha256(std::string_view key, std::string_view data);

/// Lowercase hex of HMAC-SHA256(key, data); used for register tokens.
std::string hmac_hex(std::string_view key, std::string_view data);

}  // namespace link_auth
}  // namespace gwx
