#include "register/register_server.hpp"

#include <grpcpp/security/server_credentials.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <grpcpp/server_builder.h>

#include <stdexcept>

namespace gwx::registry {
namespace {

// TLS from the provider (whose files reload_tls() swaps), TLS 1.2 and later (gRPC's default
// range), or plaintext without one.
std::shared_ptr<grpc::ServerCredentials> make_server_credentials(const grpc_tls_provider* tls) {
  if (tls == nullptr) {
    return grpc::InsecureServerCredentials();
  }
  grpc::experimental::TlsServerCredentialsOptions options(tls->provider());
  options.watch_identity_key_cert_pairs();
  if (tls->has_roots()) {
    options.watch_root_certs();
    options.set_cert_request_type(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  } else {
    options.set_cert_request_type(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  }
  return grpc::experimental::TlsServerCredentials(options);
}

}  // namespace

register_server::register_server(const host_port& listen, register_config config,
                                 metrics::registry* metrics, const tls_files& tls)
    : host_(listen.host) {
  if (!tls.cert.empty()) {
    tls_ = std::make_unique<grpc_tls_provider>(tls, grpc_tls_provider::role::server, "--tls-*");
  }
  service_ = std::make_unique<register_service>(std::move(config), metrics);
  grpc::ServerBuilder builder;
  int bound_port = 0;
  builder.AddListeningPort(listen.to_string(), make_server_credentials(tls_.get()), &bound_port);
  builder.RegisterService(service_.get());
  // gRPC sets SO_REUSEPORT by default, which would let a second register silently share the
  // port with the first; an operator wants "address in use" instead.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  // Watch streams can be idle for hours: ping to find dead watchers, and accept the watchers'
  // own pings (every 10 s, see make_register_channel).
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 20000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 5000);
  server_ = builder.BuildAndStart();
  if (!server_ || bound_port == 0) {
    service_->shutdown();
    throw std::runtime_error("cannot listen on " + listen.to_string() +
                             " (port in use, address not local, or host unknown)");
  }
  port_ = static_cast<std::uint16_t>(bound_port);
}

register_server::~register_server() {
  shutdown(std::chrono::milliseconds(200));
}

std::optional<std::string> register_server::reload_tls() {
  return tls_ ? tls_->reload() : std::nullopt;
}

void register_server::shutdown(std::chrono::milliseconds grace) {
  std::lock_guard lock(shutdown_mutex_);
  if (shut_down_) {
    return;
  }
  shut_down_ = true;
  // Watch handlers return first, so Shutdown does not wait out their poll interval.
  service_->shutdown();
  server_->Shutdown(std::chrono::system_clock::now() + grace);
  server_->Wait();
}

}  // namespace gwx::registry
