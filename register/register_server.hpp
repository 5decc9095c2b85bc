#pragma once

#include <grpcpp/server.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "common/net/endpoint.hpp"
#include "common/net/tls_files.hpp"
#include "common/registry/grpc_tls_provider.hpp"
#include "register/register_service.hpp"

namespace gwx::registry {

/// A gRPC server running one register_service on one address. Port 0 picks a free port;
/// port() tells which. Used by gwx-register and by tests that need an in-process register.
/// Thread-safe.
class register_server {
 public:
  /// Binds and starts serving; keeps the service's metrics in `metrics` unless it is null (the
  /// registry must outlive the server). With `tls.cert` and `tls.key` it serves over TLS only,
  /// and with `tls.ca` too it requires every caller to present a certificate signed by that CA
  /// (TLS 1.2 or later). Throws std::runtime_error when the address cannot be bound, a TLS file
  /// cannot be read or the key does not match its certificate (net::tls_config_error, one line).
  register_server(const host_port& listen, register_config config,
                  metrics::registry* metrics = nullptr, const tls_files& tls = {});
  /// Shuts down with a short grace period.
  ~register_server();
  register_server(const register_server&) = delete;
  register_server& operator=(const register_server&) = delete;

  /// The port actually bound.
  std::uint16_t port() const { return port_; }

  /// "host:port" with the port actually bound.
  std::string address() const { return format_host_port(host_, port_); }

  /// Reads the TLS files again (gwx-register: SIGHUP). When they load and the key matches the
  /// certificate, new TLS connections get them within a second; connections up, and their Watch
  /// streams, are untouched. Otherwise the previous files stay in use and the error is returned
  /// (one line naming the file). Without TLS: nothing to do, nullopt.
  std::optional<std::string> reload_tls();

  /// Whether the server serves TLS.
  bool tls() const { return tls_ != nullptr; }

  /// The TLS files, for messages ("" without TLS).
  std::string describe_tls() const { return tls_ ? tls_->describe() : std::string(); }

  /// The service, for inspection.
  register_service& service() { return *service_; }

  /// Ends Watch streams, lets calls in flight finish for up to `grace`, cancels the rest and
  /// waits for the server to stop. Idempotent.
  void shutdown(std::chrono::milliseconds grace = std::chrono::milliseconds(1000));

 private:
  std::string host_;
  std::uint16_t port_ = 0;
  std::unique_ptr<register_service> service_;
  // Declared before server_: gRPC reads the provider's files until the server is destroyed.
  std::unique_ptr<grpc_tls_provider> tls_;
  std::unique_ptr<grpc::Server> server_;
  std::mutex shutdown_mutex_;
  bool shut_down_ = false;
};

}  // namespace gwx::registry
