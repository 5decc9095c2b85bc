#pragma once

#include <string>

namespace gwx {

/// PEM files for one TLS hop (a link, the register's gRPC): this end's certificate chain and key,
/// and the CA the other end's certificate must be signed by. Paths only; read at start-up. A value
/// type; part of the public headers (cluster_options).
struct tls_files {
  /// This end's certificate chain (leaf first); empty: none.
  std::string cert;
  /// The private key of `cert`.
  std::string key;
  /// The CA certificate(s) the peer is verified against; empty: no TLS on this hop.
  std::string ca;

  /// Whether anything is set (TLS is wanted).
  bool any() const { return !cert.empty() || !key.empty() || !ca.empty(); }
};

}  // namespace gwx
