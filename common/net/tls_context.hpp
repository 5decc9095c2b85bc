#pragma once

#include <openssl/ssl.h>

#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace gwx::net {

/// A certificate chain and its private key, both PEM files. The chain file holds the leaf
/// first, then any intermediates.
struct tls_identity {
  std::string cert_file;
  std::string key_file;
};

/// Whether a TLS server asks the peer for a certificate.
enum class tls_peer_verify : unsigned char {
  none,      ///< no certificate asked for
  optional,  ///< asked for; a peer without one gets in, a certificate that does not verify does not
  require,   ///< a peer without a certificate signed by the CA is refused
};

/// What a TLS server context is built from. Files are read by make_server() and again by
/// reload().
struct tls_server_config {
  /// At least one. The first is the default; with several, a client's SNI name picks the first
  /// whose certificate names it (subjectAltName DNS entries, wildcards included, else CN).
  std::vector<tls_identity> identities;
  /// PEM file of the CA(s) client certificates must chain to (needed unless verify is none).
  std::string client_ca_file;
  tls_peer_verify client_verify = tls_peer_verify::none;
  /// ALPN protocols this server speaks, most preferred first (empty: no ALPN). A client that
  /// offers ALPN but none of these is refused (RFC 7301 no_application_protocol).
  std::vector<std::string> alpn;
};

/// What a TLS client context is built from.
struct tls_client_config {
  /// PEM file of the CA(s) the server's certificate must chain to; empty: the system's.
  std::string ca_file;
  /// Our own certificate, for servers that ask for one.
  std::optional<tls_identity> identity;
  /// ALPN protocols offered (empty: none).
  std::vector<std::string> alpn;
};

/// A configuration error (unreadable file, key not matching its certificate, …): one line
/// naming the file and what is wrong with it.
class tls_config_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// The verified certificate of a TLS peer, as applications see it.
struct tls_peer_certificate {
  /// RFC 2253 distinguished name, e.g. "CN=device-42,O=Fleet".
  std::string subject;
  /// subjectAltName entries, typed: "DNS:a.example", "IP:10.0.0.1", "email:x@y", "URI:spiffe://…".
  std::vector<std::string> sans;
};

/// Releases an SSL object.
struct ssl_deleter {
  void operator()(SSL* ssl) const { SSL_free(ssl); }
};
using ssl_ptr = std::unique_ptr<SSL, ssl_deleter>;

/// Releases one reference to an SSL_CTX.
struct ssl_ctx_deleter {
  void operator()(SSL_CTX* ctx) const { SSL_CTX_free(ctx); }
};
using ssl_ctx_ptr = std::unique_ptr<SSL_CTX, ssl_ctx_deleter>;

/// A TLS context built from PEM files (OpenSSL SSL_CTX underneath): TLS 1.2 and 1.3 only, a
/// forward-secret AEAD cipher list, no renegotiation, no compression, no server-side session
/// cache (TLS 1.3 resumption uses stateless tickets), idle read/write buffers released
/// (SSL_MODE_RELEASE_BUFFERS), partial writes and moving write buffers allowed.
///
/// Every connection shares the context (each SSL object references it); reload() builds a new
/// one from the same files and swaps it in: connections made afterwards use the new
/// certificates, connections already up keep theirs. Thread-safe: new_ssl(), native() and
/// reload() may be called from any thread.
class tls_context {
 public:
  /// Builds a server context. Throws tls_config_error.
  static std::shared_ptr<tls_context> make_server(tls_server_config config);
  /// Builds a client context (the peer is always verified against the CA). Throws
  /// tls_config_error.
  static std::shared_ptr<tls_context> make_client(tls_client_config config);

  /// Reads the files again and, if everything loads, uses the new context for connections made
  /// from now on. On failure the current context stays and the error is returned (one line).
  std::optional<std::string> reload();

  /// A new SSL object on the current context, in server or client mode. For a client,
  /// `server_name` (when not empty) is sent as SNI and the server's certificate must name it.
  ssl_ptr new_ssl(const std::string& server_name = {}) const;

  /// The current SSL_CTX, with a reference of its own (e.g. to wrap in asio::ssl::context).
  ssl_ctx_ptr native() const;

  bool is_server() const { return server_.has_value(); }
  /// How many times reload() swapped in a new context.
  unsigned generation() const;
  /// The files this context reads, for messages ("cert.pem, key.pem").
  std::string describe() const;

 private:
  tls_context() = default;
  ssl_ctx_ptr build() const;

  std::optional<tls_server_config> server_;
  std::optional<tls_client_config> client_;
  mutable std::mutex mutex_;
  ssl_ctx_ptr ctx_;
  unsigned generation_ = 0;
};

/// The peer's certificate if it presented one and it verified; nullopt otherwise.
std::optional<tls_peer_certificate> verified_peer_certificate(const SSL* ssl);

/// Reads a whole file (PEM for gRPC credentials and the like). Throws tls_config_error naming
/// `what` and the path when it cannot be read or is empty.
std::string read_pem_file(const std::string& path, const std::string& what);

/// The oldest error on this thread's OpenSSL error queue as text (and clears the queue); ""
/// when there is none.
std::string take_openssl_error();

}  // namespace gwx::net
