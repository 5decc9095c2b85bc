// libFuzzer target for the push bus message parser (common/bus/bus_message.hpp and the JSON
// parser under it). Input: byte 0 picks the size limit, the rest is the message. Checks that
// parsing never crashes, that an accepted message stays within the limit, and that every
// command it gives encodes back to a bus message that parses to the same command.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "common/bus/bus_message.hpp"
#include "common/bus/json.hpp"

namespace {

void check(bool ok) {
  if (!ok) {
    std::abort();
  }
}

/// The command as gateway_api builds it: the message inside its Message field.
gwx::link::v2::Command with_message(const gwx::bus::bus_command& c) {
  auto cmd = c.cmd;
  using gwx::link::v2::Command;
  switch (cmd.op_case()) {
    case Command::kSendToClients:
      cmd.mutable_send_to_clients()->mutable_message()->set_data(*c.message);
      break;
    case Command::kSendToAll:
      cmd.mutable_send_to_all()->mutable_message()->set_data(*c.message);
      break;
    case Command::kSendToGroups:
      cmd.mutable_send_to_groups()->mutable_message()->set_data(*c.message);
      break;
    case Command::kSendToUids:
      cmd.mutable_send_to_uids()->mutable_message()->set_data(*c.message);
      break;
    case Command::kCloseClient:
      if (cmd.close_client().has_final_message()) {
        cmd.mutable_close_client()->mutable_final_message()->set_data(*c.message);
      }
      break;
    default:
      break;
  }
  return cmd;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) {
    return 0;
  }
  const std::size_t limit = static_cast<std::size_t>(data[0]) * 64 + 1;
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  gwx::bus::json_parse(text);  // the bare parser, default limits
  const auto r = gwx::bus::parse_bus_message(text, limit);
  if (r.error != gwx::bus::bus_error::none) {
    check(r.commands.empty());
    return 0;
  }
  check(text.size() <= limit);
  check(!r.commands.empty());
  for (const auto& c : r.commands) {
    const auto cmd = with_message(c);
    const auto pubs = gwx::bus::encode_bus_command(cmd, false);
    if (pubs.empty()) {
      continue;  // e.g. a client-addressed command naming no client_id: nothing to publish
    }
    check(pubs.size() == 1);
    const auto again = gwx::bus::parse_bus_message(pubs[0].json, pubs[0].json.size());
    check(again.error == gwx::bus::bus_error::none && again.commands.size() == 1);
    check(with_message(again.commands[0]).SerializeAsString() == cmd.SerializeAsString());
    gwx::bus::encode_bus_command(cmd, true);  // routed split: must not crash
  }
  return 0;
}
