#pragma once

#include <string>
#include <string_view>

namespace gwx {

/// Challenge-response proofs for the gateway <-> peer link (see proto/gwx/link/v2/link.proto).
/// The secret itself never crosses the wire. Pure functions; thread-safe.
namespace link_auth {

/// 16 random bytes from the OS.
std::string make_nonce();

/// HMAC-SHA256(secret, "gwx-link-v1 peer" || gateway_nonce || peer_nonce).
std::string peer_proof(std::string_view secret, std::string_view gateway_nonce,
                       std::string_view peer_nonce);

/// HMAC-SHA256(secret, "gwx-link-v1 gateway" || gateway_nonce || peer_nonce).
std::string gateway_proof(std::string_view secret, std::string_view gateway_nonce,
                          std::string_view peer_nonce);

/// Constant-time equality (length is not secret).
bool equal(std::string_view a, std::string_view b);

/// HMAC-SHA256(key, data), 32 raw bytes.
std::string hmac_sha256(std::string_view key, std::string_view data);

/// Lowercase hex of HMAC-SHA256(key, data); used for register tokens.
std::string hmac_hex(std::string_view key, std::string_view data);

}  // namespace link_auth
}  // namespace gwx
