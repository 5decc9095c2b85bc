#pragma once

#include <memory>
#include <string>

#include "common/net/tls_context.hpp"
#include "common/net/tls_files.hpp"
#include "common/options.hpp"

namespace gwx {

/// The TLS options every role that links gateways and workers shares (gwx-gateway, gwx-worker,
/// gwxctl): --link-tls-cert, --link-tls-key, --link-tls-ca. Set all three or none.
void add_link_tls_options(po::options_description& options);

/// The link TLS files from parsed options: all three set (TLS) or none (plain). Throws
/// std::invalid_argument with one line naming the options when only some are set, a file cannot
/// be read, or the key does not match the certificate.
tls_files link_tls_from(const po::variables_map& vm);

/// The options of every role that calls the registers (gwx-gateway, gwx-worker, gwxctl):
/// --register-tls-ca, and --register-tls-cert / --register-tls-key when the registers require a
/// client certificate.
void add_register_tls_options(po::options_description& options);

/// The register TLS files from parsed options: the CA alone, or with a certificate and its key;
/// nothing set: plaintext gRPC. Throws std::invalid_argument (one line, naming the option) when a
/// certificate or key is set without the CA, one of the pair without the other, a file cannot
/// be read, or the key does not match the certificate.
tls_files register_tls_from(const po::variables_map& vm);

/// A TLS server context from `files`: the certificate chain and key, and, when `ca` is set, every
/// client must present a certificate signed by it. Throws net::tls_config_error (one line).
std::shared_ptr<net::tls_context> make_tls_server(const tls_files& files);

/// A TLS client context from `files`: the server is verified against `ca` (its chain only, not
/// its name: links dial addresses the registers hand out), and `cert`/`key` are presented when
/// set. Throws net::tls_config_error (one line).
std::shared_ptr<net::tls_context> make_tls_client(const tls_files& files);

/// Loads `files` as a TLS server would (certificate chain, its key, and `ca` as the CA client
/// certificates must chain to, when set) and drops the result: a missing or unreadable file, a
/// key that does not match its certificate or a CA file without a certificate is reported at
/// start-up. Throws std::invalid_argument "<what>: <reason>" (one line).
void check_server_tls(const tls_files& files, const std::string& what);

/// The same for a TLS client: `ca` to verify the server with, and the certificate and key when
/// set.
void check_client_tls(const tls_files& files, const std::string& what);

}  // namespace gwx
