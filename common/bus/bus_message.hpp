#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gwx/link/v2/link.pb.h"

namespace gwx::bus {

/// One Gateway API write as the gateway's command executor runs it: the link command and the
/// message it carries (of a send, or a close's final message), kept apart as on the link.
struct bus_command {
  link::v2::Command cmd;
  /// Never null. The commands of one close_client naming several clients share one buffer:
  /// a message is held once however many clients it names.
  std::shared_ptr<const std::string> message;
  /// This command's part of the message's bytes; the parts of the commands sharing one buffer
  /// add up to its size, so what they hold is counted once (the gateway's --bus-max-pending).
  std::size_t message_bytes = 0;

  std::string_view text() const { return *message; }
};

/// Why a bus message was refused; also the `reason` label of the rejection metric.
enum class bus_error {
  none,
  too_large,     ///< over the configured size limit (checked before parsing)
  invalid_json,  ///< not one JSON object
  too_deep,      ///< nested deeper than the limit
  unknown_op,    ///< "op" missing or not one of the documented operations
  bad_field,     ///< a field missing, of the wrong type, unknown, or bad base64
};

/// The label of `e` ("too_large", "invalid_json", …).
const char* bus_error_name(bus_error e);

/// What parse_bus_message() made of one message.
struct bus_parse_result {
  /// Several for a close_client naming several clients (one CloseClient each, a client named
  /// twice closed once).
  std::vector<bus_command> commands;
  bus_error error = bus_error::none;
  /// A one-line explanation for the log (never the message itself).
  std::string detail;
};

/// Parses one bus message — a JSON object `{"op": …, …}` as documented in the README — into the
/// commands it stands for. Strict: unknown ops or fields, wrong types and bad base64 are
/// refused with bus_error::bad_field / unknown_op; nesting deeper than 8 levels is too_deep;
/// `max_bytes` bounds the size. Never throws on bad input. Thread-safe.
bus_parse_result parse_bus_message(std::string_view text, std::size_t max_bytes);

/// The routing key of the gateway that issued `client_id` in AMQP routed mode:
/// "client." followed by the client_id minus its last 16 hex digits (the gateway's address and
/// epoch). Empty when `client_id` is not a client_id.
std::string client_routing_key(std::string_view client_id);

/// The longest routing key AMQP carries (a short string). A gateway does not bind a longer
/// key, so a message whose uid or group would make one is published to `all` instead.
inline constexpr std::size_t k_max_routing_key = 255;

/// One bus message to publish: its routing key (AMQP routed mode) and its JSON text.
struct bus_publication {
  std::string routing_key;
  std::string json;
};

/// Encodes a Gateway API write (as gwx::gateway_api builds it, the message in its Message
/// field) as bus messages. `routed`: split so that each message carries one routing key and
/// reaches only the gateways concerned (`uid.<uid>`, `group.<group>`, the client key, `all`);
/// otherwise one message (routing key "all"). A key longer than k_max_routing_key becomes
/// `all` (the gateways of its clients match the message's names themselves). Queries and drains are
/// not bus operations and give nothing; `error` then says why. Names that are not UTF-8 cannot
/// travel in JSON: such a command gives nothing either.
std::vector<bus_publication> encode_bus_command(const link::v2::Command& cmd, bool routed,
                                                std::string* error = nullptr);

/// Base64 (RFC 4648, with padding) of `bytes`.
std::string base64_encode(std::string_view bytes);
/// Decodes strict base64 (padding required, no whitespace); false on anything else.
bool base64_decode(std::string_view text, std::string& out);

}  // namespace gwx::bus
