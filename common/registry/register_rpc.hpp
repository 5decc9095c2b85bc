#pragma once

#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/status.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/net/endpoint.hpp"
#include "common/net/tls_files.hpp"
#include "common/registry/gateway_watcher.hpp"
#include "common/registry/grpc_tls_provider.hpp"
#include "gwx/registry/v1/registry.pb.h"

namespace gwx::registry {

/// Credentials for channels to the registers, and the files behind them.
struct register_credentials {
  std::shared_ptr<grpc::ChannelCredentials> channel;
  /// With TLS: its files; reload() makes the channels' new connections use what they hold now
  /// (connections up stay). Null for plaintext.
  std::shared_ptr<grpc_tls_provider> tls;

  /// Reads the TLS files again (see grpc_tls_provider::reload); nullopt on success or without
  /// TLS, else the error (one line naming the file).
  std::optional<std::string> reload() const { return tls ? tls->reload() : std::nullopt; }
};

/// Credentials for channels to the registers: TLS verified against `tls.ca` (the certificate
/// must name the address dialled; with the client certificate `tls.cert`/`tls.key` when set) or,
/// when `tls` is empty, plaintext. Reads the files now; throws std::invalid_argument naming a
/// file that cannot be read or a key that does not match its certificate.
register_credentials make_register_credentials(const tls_files& tls);

/// Logs the outcome of a reload of the register TLS files `tls` (`error`: what reload() returned):
/// one info line, one error line, or nothing without TLS. Returns whether it succeeded.
bool log_register_tls_reload(const std::optional<std::string>& error, const tls_files& tls);

/// A channel to one register, tuned for long-lived use: its own reconnect backoff kept short
/// (100 ms to 2 s) so a restarted register is found again quickly, and keepalive pings so a
/// register that vanished without closing its sockets is noticed. Thread-safe.
std::shared_ptr<grpc::Channel> make_register_channel(
    const host_port& address, std::shared_ptr<grpc::ChannelCredentials> credentials);

/// The proto form of an entry (started_unix_ms is left to the caller).
v1::GatewayInfo to_proto(const gateway_entry& entry);

/// The entry form of a proto GatewayInfo.
gateway_entry from_proto(const v1::GatewayInfo& info);

/// Adds the x-gwx-auth proof of `token` for one call of `method` ("Heartbeat", "Withdraw",
/// "List", "Watch") to `context`; nothing when `token` is empty.
void add_auth_metadata(grpc::ClientContext& context, const std::string& token,
                       std::string_view method);

/// "CODE_NAME: message" of a failed call, for logs.
std::string describe(const grpc::Status& status);

/// describe() of a call that could not reach a register, with a hint when the failure looks like
/// a TLS mismatch (`tls`: this end calls over TLS): a TLS caller facing a plaintext register, a
/// plaintext caller facing a TLS register, or a certificate the caller's CA did not sign.
std::string describe_unreachable(const grpc::Status& status, bool tls);

}  // namespace gwx::registry
