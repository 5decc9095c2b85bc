#include "common/registry/register_rpc.hpp"

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/security/tls_certificate_verifier.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <grpcpp/support/channel_arguments.h>
#include <spdlog/spdlog.h>

#include <array>

#include "common/registry/register_auth.hpp"

namespace gwx::registry {

namespace {

// grpc::StatusCode names, indexed by code.
constexpr std::array<const char*, 17> k_code_names = {
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED (check the token)",
};

}  // namespace

register_credentials make_register_credentials(const tls_files& tls) {
  if (!tls.any()) {
    return {grpc::InsecureChannelCredentials(), nullptr};
  }
  auto files =
      std::make_shared<grpc_tls_provider>(tls, grpc_tls_provider::role::client, "--register-tls-*");
  grpc::experimental::TlsChannelCredentialsOptions options;
  options.set_certificate_provider(files->provider());
  options.watch_root_certs();
  if (files->has_identity()) {
    options.watch_identity_key_cert_pairs();
  }
  // The register's certificate must chain to the CA and name the address dialled.
  options.set_verify_server_certs(true);
  options.set_certificate_verifier(
      std::make_shared<grpc::experimental::HostNameCertificateVerifier>());
  return {grpc::experimental::TlsCredentials(options), std::move(files)};
}

bool log_register_tls_reload(const std::optional<std::string>& error, const tls_files& tls) {
  if (error) {
    spdlog::error(
        "register client certificate reload failed, new connections to the registers keep the "
        "previous ones: {}",
        *error);
    return false;
  }
  if (tls.any()) {
    std::string files = tls.ca;
    for (const auto* f : {&tls.cert, &tls.key}) {
      if (!f->empty()) {
        files += ", " + *f;
      }
    }
    spdlog::info(
        "register client certificates reloaded ({}); new connections to the registers use "
        "them, connections up keep theirs",
        files);
  }
  return true;
}

std::shared_ptr<grpc::Channel> make_register_channel(
    const host_port& address, std::shared_ptr<grpc::ChannelCredentials> credentials) {
  grpc::ChannelArguments args;
  // gRPC's default reconnect backoff grows to two minutes; our loops retry every <= 2 s and
  // would otherwise hit a channel that refuses to try.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
  // Despite its name this is gRPC's minimum connect timeout: each attempt (TCP, then the TLS
  // handshake) is given max(this, the current backoff). At 100 ms a TLS handshake on a busy
  // machine never finished in time, and every retry failed the same way.
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 5000);
  // A Watch stream may stay silent for hours; pings detect a dead peer.
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 10000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  return grpc::CreateCustomChannel(address.to_string(), std::move(credentials), args);
}

v1::GatewayInfo to_proto(const gateway_entry& entry) {
  v1::GatewayInfo info;
  info.set_gateway_id(entry.gateway_id);
  info.set_internal_address(entry.internal_address);
  for (const auto& listener : entry.listeners) {
    info.add_listeners(listener);
  }
  info.set_name(entry.name);
  return info;
}

gateway_entry from_proto(const v1::GatewayInfo& info) {
  return gateway_entry{info.gateway_id(),
                       info.internal_address(),
                       {info.listeners().begin(), info.listeners().end()},
                       info.name()};
}

void add_auth_metadata(grpc::ClientContext& context, const std::string& token,
                       std::string_view method) {
  if (!token.empty()) {
    context.AddMetadata(k_auth_metadata, make_auth_proof(token, method));
  }
}

std::string describe(const grpc::Status& status) {
  const auto code = static_cast<std::size_t>(status.error_code());
  const char* name = code < k_code_names.size() ? k_code_names[code] : "UNKNOWN";
  return std::string(name) + ": " + status.error_message();
}

std::string describe_unreachable(const grpc::Status& status, bool tls) {
  auto text = describe(status);
  const auto& message = status.error_message();
  const auto has = [&message](const char* part) { return message.find(part) != std::string::npos; };
  if (status.error_code() != grpc::StatusCode::UNAVAILABLE &&
      status.error_code() != grpc::StatusCode::UNKNOWN) {
    return text;
  }
  if (tls && has("wrong version number")) {
    text +=
        " (this end uses TLS, the register does not: start it with --tls-cert/--tls-key or "
        "drop --register-tls-ca)";
  } else if (tls && has("certificate verify failed")) {
    text +=
        " (the register's certificate is not signed by --register-tls-ca, has expired, or "
        "does not name the address dialled)";
  } else if (tls && (has("alert") || has("Socket closed") || has("SETTINGS frame"))) {
    text +=
        " (the register ended the TLS handshake: does it require a client certificate "
        "signed by its --tls-client-ca? see --register-tls-cert/--register-tls-key)";
  } else if (!tls && (has("Socket closed") || has("SETTINGS frame"))) {
    text += " (if the register serves TLS, set --register-tls-ca)";
  }
  return text;
}

}  // namespace gwx::registry
