#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace gwx {

/// What a client_id names: the gateway (its advertised internal address and the epoch of its
/// process) and the connection within it. Anyone holding a client_id can route on it without a
/// lookup; the epoch makes ids from an earlier run of a gateway resolve to "offline".
///
/// Wire form: lowercase hex of [version=1][family 4|6][ip 4|16 bytes][port 2][epoch 8][conn 8],
/// all big-endian: 48 hex characters for IPv4, 72 for IPv6.
struct client_id_parts {
  /// "host:port" (IPv6 in brackets) of the gateway's internal listener.
  std::string gateway_address;
  std::uint64_t epoch = 0;
  /// Connection number within the gateway; its low 8 bits name the event loop holding it.
  std::uint64_t connection = 0;

  /// Event loop index encoded in the connection number.
  unsigned loop() const { return static_cast<unsigned>(connection & 0xff); }
};

/// Builds a client_id. `ip` is a textual IPv4/IPv6 address. Returns empty on a bad address.
std::string make_client_id(std::string_view ip, std::uint16_t port, std::uint64_t epoch,
                           std::uint64_t connection);

/// Parses a client_id; nullopt when it is not one (wrong length, bad hex, unknown version).
std::optional<client_id_parts> parse_client_id(std::string_view id);

/// Connection number of a client_id, read from its last 16 hex digits only: the lookup on every
/// command, without parsing the rest. The caller compares the rest of the id (with the
/// gateway's client_id_prefix(), which holds the epoch, or with the whole id of the client it
/// found). nullopt when the length or the hex is wrong.
std::optional<std::uint64_t> client_id_connection(std::string_view id);

/// What every client_id issued by the gateway at ip:port in process `epoch` starts with (all
/// but the 16 hex digits of the connection). Empty on a bad address.
std::string client_id_prefix(std::string_view ip, std::uint16_t port, std::uint64_t epoch);

/// Hex form of a gateway epoch, as used for gateway_id.
std::string epoch_to_hex(std::uint64_t epoch);

/// A fresh, effectively unique epoch: 64 random bits from the OS.
std::uint64_t new_epoch();

}  // namespace gwx
