#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/cluster/gateway_api.hpp"
#include "common/cluster/types.hpp"

namespace gwx {

namespace sdk {
class event_runner;
}

/// The certificate a client presented on a TLS listener that asks for one, verified against
/// the listener's CA.
struct client_certificate {
  /// RFC 2253 distinguished name, e.g. "CN=device-42,O=Fleet".
  std::string subject;
  /// subjectAltName entries, typed: "DNS:…", "IP:…", "email:…", "URI:…".
  std::vector<std::string> sans;
};

/// How a client on a TLS listener (wss://, tls+…) connected.
struct tls_info {
  std::string version;  ///< "TLSv1.3", "TLSv1.2"
  std::string cipher;
  std::string server_name;  ///< the SNI name it asked for (empty: none)
  /// Present when it presented a certificate that verified.
  std::optional<client_certificate> certificate;
};

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
  /// `tls`: how the client connected, on the connect event of a client of a TLS listener.
  context(gateway_api& api, client_info info, session_map session, bool redelivered = false,
          std::optional<tls_info> tls = std::nullopt);

  /// A copy holds its own copy of the client's info.
  context(const context& other);
  context& operator=(const context&) = delete;

  const std::string& client_id() const { return info_->client_id; }
  const std::string& remote_address() const { return info_->remote_address; }
  std::uint16_t remote_port() const { return info_->remote_port; }
  const std::string& gateway_address() const { return info_->gateway_address; }
  const std::string& listener() const { return info_->listener; }
  const std::string& uid() const { return info_->uid; }
  /// How the client connected over TLS: set in on_websocket_connect and on_connect of clients
  /// on TLS listeners, with the verified client certificate when there is one (bind a uid from
  /// it there); empty on other events and plain listeners.
  const std::optional<tls_info>& tls() const { return tls_; }
  const client_info& info() const { return *info_; }

  /// The client's session. Changes are written back to the gateway when the handler returns,
  /// and the client's next events see them even if they were already on their way.
  session_map& session() { return session_; }
  /// The client's session.
  const session_map& session() const { return session_; }

  /// True when this event went to another worker first, which died before acknowledging it.
  bool redelivered() const { return redelivered_; }

  /// The Gateway API (thread-safe, like everywhere).
  gateway_api& api() { return api_; }

  /// Sends `msg` to the client of this event. A message the handler keeps, such as the one it
  /// got (`ctx.send_to_current_client(msg)` in on_message), is encoded without a copy.
  void send_to_current_client(const message& msg);
  /// Sends `msg` to the client of this event.
  void send_to_current_client(message&& msg);
  /// Sends `final_message` (if any), then closes the client of this event gracefully.
  void close_current_client(std::optional<message> final_message = std::nullopt);
  /// Closes the client of this event at once.
  void destroy_current_client();

 private:
  friend class sdk::event_runner;  // refills one context for each event

  gateway_api& api_;
  client_info own_info_;
  // The event's client: own_info_, or, while the SDK runs a handler, the info in its event
  // slot (no copy per event).
  const client_info* info_ = &own_info_;
  session_map session_;
  bool redelivered_ = false;
  std::optional<tls_info> tls_;
};

}  // namespace gwx
