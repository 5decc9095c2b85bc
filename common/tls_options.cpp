#include "common/tls_options.hpp"

#include <stdexcept>

namespace gwx {
namespace {

std::string value_of(const po::variables_map& vm, const char* name) {
  return vm.count(name) != 0U ? vm[name].as<std::string>() : std::string();
}

}  // namespace

std::shared_ptr<net::tls_context> make_tls_server(const tls_files& files) {
  net::tls_server_config config;
  config.identities.push_back({files.cert, files.key});
  if (!files.ca.empty()) {
    config.client_ca_file = files.ca;
    config.client_verify = net::tls_peer_verify::require;
  }
  return net::tls_context::make_server(std::move(config));
}

std::shared_ptr<net::tls_context> make_tls_client(const tls_files& files) {
  net::tls_client_config config;
  config.ca_file = files.ca;
  if (!files.cert.empty()) {
    config.identity = net::tls_identity{files.cert, files.key};
  }
  return net::tls_context::make_client(std::move(config));
}

void check_server_tls(const tls_files& files, const std::string& what) {
  try {
    make_tls_server(files);
  } catch (const net::tls_config_error& e) {
    throw std::invalid_argument(what + ": " + e.what());
  }
}

void check_client_tls(const tls_files& files, const std::string& what) {
  try {
    make_tls_client(files);
  } catch (const net::tls_config_error& e) {
    throw std::invalid_argument(what + ": " + e.what());
  }
}

void add_link_tls_options(po::options_description& options) {
  // clang-format off
  options.add_options()
      ("link-tls-cert", po::value<std::string>()->value_name("FILE"),
       "TLS on the gateway<->worker links: this process's certificate chain (PEM, leaf first). "
       "Set --link-tls-cert, --link-tls-key and --link-tls-ca together, on every gateway, worker "
       "and gwxctl of the cluster: a TLS end refuses a plain one and the reverse. The secret's "
       "challenge-response still runs inside. Default: none, plain links")
      ("link-tls-key", po::value<std::string>()->value_name("FILE"),
       "private key (PEM) of --link-tls-cert")
      ("link-tls-ca", po::value<std::string>()->value_name("FILE"),
       "CA certificate(s) (PEM) the other end's link certificate must be signed by (both ends "
       "verify each other; use a CA dedicated to the cluster's links)");
  // clang-format on
}

tls_files link_tls_from(const po::variables_map& vm) {
  tls_files files{value_of(vm, "link-tls-cert"), value_of(vm, "link-tls-key"),
                  value_of(vm, "link-tls-ca")};
  if (!files.any()) {
    return files;
  }
  if (files.cert.empty() || files.key.empty() || files.ca.empty()) {
    throw std::invalid_argument(
        "--link-tls-cert, --link-tls-key and --link-tls-ca go together (missing --" +
        std::string(files.cert.empty()  ? "link-tls-cert"
                    : files.key.empty() ? "link-tls-key"
                                        : "link-tls-ca") +
        ")");
  }
  check_server_tls(files, "--link-tls-*");
  return files;
}

void add_register_tls_options(po::options_description& options) {
  // clang-format off
  options.add_options()
      ("register-tls-ca", po::value<std::string>()->value_name("FILE"),
       "call the registers over TLS, verifying their certificate against this CA (PEM); the "
       "name or IP dialled in --register must be in the register certificate's SANs. Default: "
       "none, plaintext gRPC")
      ("register-tls-cert", po::value<std::string>()->value_name("FILE"),
       "with --register-tls-ca: client certificate chain (PEM) for registers started with "
       "--tls-client-ca")
      ("register-tls-key", po::value<std::string>()->value_name("FILE"),
       "private key (PEM) of --register-tls-cert");
  // clang-format on
}

tls_files register_tls_from(const po::variables_map& vm) {
  tls_files files{value_of(vm, "register-tls-cert"), value_of(vm, "register-tls-key"),
                  value_of(vm, "register-tls-ca")};
  if (!files.any()) {
    return files;
  }
  if (files.ca.empty()) {
    throw std::invalid_argument(
        "--register-tls-cert/--register-tls-key need --register-tls-ca (the CA the registers' "
        "certificate is checked against)");
  }
  if (files.cert.empty() != files.key.empty()) {
    throw std::invalid_argument("--register-tls-cert and --register-tls-key go together");
  }
  check_client_tls(files, "--register-tls-*");
  return files;
}

}  // namespace gwx
