#pragma once

#include <grpcpp/security/tls_certificate_provider.h>

#include <ctime>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "common/net/tls_files.hpp"

namespace gwx::registry {

/// The certificates of one end of a gRPC TLS hop, reloadable while gRPC runs: new handshakes use
/// what the last successful reload() read, connections up keep theirs.
///
/// gRPC 1.51 offers no public certificate provider that the application feeds, only a static one
/// and a file watcher that polls files on its own schedule. So the files are checked here (the
/// way gwx's own TLS contexts load them) and only then copied into in-memory files (memfd) that a
/// FileWatcherCertificateProvider polls every second through /proc/self/fd: the operator's files
/// are read only on reload(), and a broken or half-written one never reaches gRPC. The key and
/// the certificate chain share one in-memory file whose modification time changes with every
/// reload, so the watcher can never pair an old key with a new certificate (it re-reads when the
/// time moved while it read).
///
/// Thread-safe.
class grpc_tls_provider {
 public:
  /// Which end the files are for; it decides how they are checked.
  enum class role : unsigned char {
    server,  ///< `cert` and `key` required; `ca` (optional): the CA client certificates need
    client,  ///< `ca` required: the CA the server is verified against; `cert`/`key` optional
  };

  /// Reads and checks `files`. Throws net::tls_config_error "<what>: <reason>" (one line) when a
  /// file cannot be read, holds no PEM, or the key does not match its certificate, and
  /// std::runtime_error when the in-memory copies cannot be made.
  grpc_tls_provider(const tls_files& files, role end, std::string what);
  ~grpc_tls_provider();
  grpc_tls_provider(const grpc_tls_provider&) = delete;
  grpc_tls_provider& operator=(const grpc_tls_provider&) = delete;

  /// The provider to put in grpc::experimental::TlsServerCredentialsOptions or
  /// TlsChannelCredentialsOptions; it serves the identity (when `cert` is set) and the root
  /// certificates (when `ca` is set).
  std::shared_ptr<grpc::experimental::CertificateProviderInterface> provider() const {
    return provider_;
  }
  bool has_identity() const { return !files_.cert.empty(); }
  bool has_roots() const { return !files_.ca.empty(); }

  /// Reads the files again. When they all load (and the key matches the certificate), new
  /// handshakes use them within k_refresh_s; otherwise the previous ones stay and the error is
  /// returned (one line naming the file).
  std::optional<std::string> reload();

  /// The files, for messages ("cert.pem, key.pem, ca.pem").
  std::string describe() const;

  /// How often gRPC looks at the in-memory copies, in seconds: the most a reload takes to reach
  /// new handshakes.
  static constexpr unsigned k_refresh_s = 1;

 private:
  struct copies {
    int identity = -1;  // certificate chain and key, or -1
    int roots = -1;     // CA certificate(s), or -1
  };
  // Reads and checks the files and writes them into new in-memory files (closed on error).
  copies load() const;

  tls_files files_;
  role role_;
  std::string what_;
  std::mutex mutex_;
  // Fixed descriptor numbers gRPC reads through /proc/self/fd; reload() puts new copies there.
  copies live_;
  std::time_t stamp_ = 0;
  std::shared_ptr<grpc::experimental::CertificateProviderInterface> provider_;
};

}  // namespace gwx::registry
