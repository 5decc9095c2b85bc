#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "common/cluster/gateway_api.hpp"
#include "common/cluster/types.hpp"

namespace gwx {

/// Who a client is, as delivered with each of its events.
struct client_info {
  std::string client_id;
  std::string remote_address;
  std::uint16_t remote_port = 0;
  /// Internal address of the gateway holding the client.
  std::string gateway_address;
  /// URL of the public listener the client came through.
  std::string listener;
  /// The uid bound to the client when the event left the gateway (empty: none).
  std::string uid;
};

/// The client an event is about, its session, and the Gateway API. Handed to each handler call
/// and valid only during it. Not thread-safe: use it on the handler thread that received it.
class context {
 public:
  /// A context for one event (the SDK builds these; tests may too).
  context(gateway_api& api, client_info info, session_map session, bool redelivered = false);

  const std::string& client_id() const { return info_.client_id; }
  const std::string& remote_address() const { return info_.remote_address; }
  std::uint16_t remote_port() const { return info_.remote_port; }
  const std::string& gateway_address() const { return info_.gateway_address; }
  const std::string& listener() const { return info_.listener; }
  const std::string& uid() const { return info_.uid; }
  const client_info& info() const { return info_; }

  /// The client's session. Changes are written back to the gateway when the handler returns,
  /// and the client's next events see them even if they were already on their way.
  session_map& session() { return session_; }
  /// The client's session.
  const session_map& session() const { return session_; }

  /// True when this event went to another worker first, which died before acknowledging it.
  bool redelivered() const { return redelivered_; }

  /// The Gateway API (thread-safe, like everywhere).
  gateway_api& api() { return api_; }

  /// Sends `msg` to the client of this event.
  void send_to_current_client(message msg);
  /// Sends `final_message` (if any), then closes the client of this event gracefully.
  void close_current_client(std::optional<message> final_message = std::nullopt);
  /// Closes the client of this event at once.
  void destroy_current_client();

 private:
  gateway_api& api_;
  client_info info_;
  session_map session_;
  bool redelivered_ = false;
};

}  // namespace gwx
