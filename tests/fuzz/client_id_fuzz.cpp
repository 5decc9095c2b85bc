// libFuzzer target for client_id parsing: whatever a worker, gwxctl or a client's message hands
// the gateway as a client_id. Input: the id as text. Checks that the full parser and the
// connection-only one (the lookup on every command) agree, that a parsed id is rebuilt byte for
// byte from its parts and starts with its gateway's prefix, and that nothing else parses.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "common/client_id.hpp"

namespace {

void check(bool ok) {
  if (!ok) {
    std::abort();
  }
}

// "host:port" or "[v6]:port" back into its parts.
bool split_address(const std::string& addr, std::string& ip, std::uint16_t& port) {
  const auto colon = addr.rfind(':');
  if (colon == std::string::npos) {
    return false;
  }
  ip = addr.substr(0, colon);
  if (ip.size() >= 2 && ip.front() == '[' && ip.back() == ']') {
    ip = ip.substr(1, ip.size() - 2);
  }
  unsigned long value = std::strtoul(addr.c_str() + colon + 1, nullptr, 10);
  if (value > 65535) {
    return false;
  }
  port = static_cast<std::uint16_t>(value);
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view id(reinterpret_cast<const char*>(data), size);
  const auto full = gwx::parse_client_id(id);
  const auto connection = gwx::client_id_connection(id);
  if (!full) {
    return 0;
  }
  // Whatever parses whole gives the same connection to the quick lookup.
  check(connection.has_value() && *connection == full->connection);
  check(size == 48 || size == 72);
  std::string ip;
  std::uint16_t port = 0;
  check(split_address(full->gateway_address, ip, port));
  const auto rebuilt = gwx::make_client_id(ip, port, full->epoch, full->connection);
  check(rebuilt == id);
  const auto prefix = gwx::client_id_prefix(ip, port, full->epoch);
  check(prefix.size() + 16 == size && id.substr(0, prefix.size()) == prefix);
  check(gwx::epoch_to_hex(full->epoch).size() == 16);
  return 0;
}
