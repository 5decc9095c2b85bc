#pragma once

#include <string>
#include <string_view>

#include "worker/sdk/handler.hpp"

namespace gwx::apps {

/// The `commands` app: a small text language, one client message per command and one reply
/// message to the sender, mapping one-to-one onto the Gateway API (see worker/README.md), so
/// the whole API can be driven from any client. Writes and queries of one client leave in the
/// order its commands came, so a reply always reflects that client's earlier commands.
/// Stateless (queries block the handler thread for at most the query timeout), so safe on
/// any number of handler threads.
class commands_app final : public handler {
 public:
  /// Refuses an upgrade whose query has `refuse=STATUS` (400-599) with that status.
  connect_decision on_websocket_connect(context& ctx, const websocket_request& request) override;
  /// A client of a TLS listener: its TLS version and, when it presented a verified
  /// certificate, the certificate's subject and SANs go into its session (tls_version,
  /// tls_subject, tls_sans), where `get` reads them.
  void on_connect(context& ctx) override;
  void on_message(context& ctx, const message& msg) override;

  /// Runs one command for the client of `ctx` and returns the reply to send it.
  static std::string execute(context& ctx, std::string_view line);
};

}  // namespace gwx::apps
