#include "common/net/tls_context.hpp"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <utility>

namespace gwx::net {
namespace {

// Mozilla's "intermediate" TLS 1.2 list without finite-field DHE: forward secrecy, AEAD only.
constexpr const char* k_tls12_ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
constexpr const char* k_tls13_suites =
    "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";
constexpr unsigned char k_session_id_context[] = {'g', 'w', 'x'};
// A verified peer certificate yields at most this many subjectAltName entries.
constexpr int k_max_sans = 64;

// What an SSL_CTX needs in its callbacks, owned by the SSL_CTX itself (ex_data), so that it
// lives exactly as long as the context and every connection still using it.
struct ctx_extras {
  std::string alpn_wire;  // length-prefixed protocol names, server preference order
  // SNI choices of the default context, in order: each candidate's leaf certificate and its
  // context (nullptr for the default itself).
  std::vector<std::pair<X509*, SSL_CTX*>> sni;

  ctx_extras() = default;
  ctx_extras(const ctx_extras&) = delete;
  ctx_extras& operator=(const ctx_extras&) = delete;
  ~ctx_extras() {
    for (auto& [cert, ctx] : sni) {
      X509_free(cert);
      SSL_CTX_free(ctx);
    }
  }
};

void free_extras(void* /*parent*/, void* ptr, CRYPTO_EX_DATA* /*ad*/, int /*idx*/, long /*argl*/,
                 void* /*argp*/) {
  delete static_cast<ctx_extras*>(ptr);
}

int extras_index() {
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, free_extras);
  return index;
}

ctx_extras& extras_of(SSL_CTX* ctx) {
  auto* e = static_cast<ctx_extras*>(SSL_CTX_get_ex_data(ctx, extras_index()));
  if (e == nullptr) {
    e = new ctx_extras();
    SSL_CTX_set_ex_data(ctx, extras_index(), e);
  }
  return *e;
}

int no_passphrase(char* /*buf*/, int /*size*/, int /*rwflag*/, void* /*userdata*/) {
  // An encrypted key is a configuration error, never a prompt on the terminal.
  return 0;
}

int select_alpn(SSL* /*ssl*/, const unsigned char** out, unsigned char* outlen,
                const unsigned char* in, unsigned int inlen, void* arg) {
  const auto* extras = static_cast<const ctx_extras*>(arg);
  const auto& ours = extras->alpn_wire;
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, outlen, reinterpret_cast<const unsigned char*>(ours.data()),
                            static_cast<unsigned int>(ours.size()), in,
                            inlen) != OPENSSL_NPN_NEGOTIATED) {
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  }
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

int select_certificate(SSL* ssl, int* /*alert*/, void* /*arg*/) {
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (name == nullptr) {
    return SSL_TLSEXT_ERR_NOACK;
  }
  auto* e = static_cast<ctx_extras*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), extras_index()));
  if (e == nullptr) {
    return SSL_TLSEXT_ERR_NOACK;
  }
  for (const auto& [cert, ctx] : e->sni) {
    if (X509_check_host(cert, name, 0, 0, nullptr) == 1) {
      if (ctx != nullptr) {
        SSL_set_SSL_CTX(ssl, ctx);
      }
      return SSL_TLSEXT_ERR_OK;
    }
  }
  // No certificate names it: the default one answers (the client decides whether to accept).
  return SSL_TLSEXT_ERR_OK;
}

std::string alpn_wire(const std::vector<std::string>& protocols) {
  std::string wire;
  for (const auto& p : protocols) {
    if (p.empty() || p.size() > 255) {
      throw tls_config_error("tls: invalid ALPN protocol name '" + p + "'");
    }
    wire.push_back(static_cast<char>(p.size()));
    wire += p;
  }
  return wire;
}

void check_readable(const std::string& path, const std::string& what) {
  if (path.empty()) {
    throw tls_config_error("tls: no " + what + " file given");
  }
  std::ifstream in(path);
  if (!in) {
    throw tls_config_error("tls: cannot read " + what + " " + path + ": " + std::strerror(errno));
  }
}

[[noreturn]] void fail(const std::string& what) {
  const auto detail = take_openssl_error();
  throw tls_config_error("tls: " + what + (detail.empty() ? "" : ": " + detail));
}

ssl_ctx_ptr new_base_ctx(bool server) {
  ssl_ctx_ptr ctx(SSL_CTX_new(server ? TLS_server_method() : TLS_client_method()));
  if (!ctx) {
    fail("cannot create an OpenSSL context");
  }
  SSL_CTX* c = ctx.get();
  SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
  SSL_CTX_set_max_proto_version(c, TLS1_3_VERSION);
  SSL_CTX_set_options(c, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
  SSL_CTX_set_mode(c, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                          SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  if (SSL_CTX_set_cipher_list(c, k_tls12_ciphers) != 1 ||
      SSL_CTX_set_ciphersuites(c, k_tls13_suites) != 1) {
    fail("cannot set the cipher list");
  }
  SSL_CTX_set_default_passwd_cb(c, no_passphrase);
  if (server) {
    // Nothing kept per past session in memory: resumption by stateless tickets only.
    SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_num_tickets(c, 1);
    SSL_CTX_set_session_id_context(c, k_session_id_context, sizeof(k_session_id_context));
  }
  return ctx;
}

void use_identity(SSL_CTX* ctx, const tls_identity& id) {
  check_readable(id.cert_file, "certificate chain");
  check_readable(id.key_file, "private key");
  if (SSL_CTX_use_certificate_chain_file(ctx, id.cert_file.c_str()) != 1) {
    fail("cannot load certificate chain " + id.cert_file);
  }
  const bool loaded = SSL_CTX_use_PrivateKey_file(ctx, id.key_file.c_str(), SSL_FILETYPE_PEM) == 1;
  if (!loaded && ERR_GET_REASON(ERR_peek_last_error()) != X509_R_KEY_VALUES_MISMATCH) {
    fail("cannot load private key " + id.key_file + " (PEM, not encrypted)");
  }
  if (!loaded || SSL_CTX_check_private_key(ctx) != 1) {
    ERR_clear_error();
    throw tls_config_error("tls: private key " + id.key_file + " does not match certificate " +
                           id.cert_file);
  }
}

void use_verify_ca(SSL_CTX* ctx, const std::string& ca_file, const std::string& what) {
  check_readable(ca_file, what);
  if (SSL_CTX_load_verify_locations(ctx, ca_file.c_str(), nullptr) != 1) {
    fail("cannot load " + what + " " + ca_file);
  }
}

ssl_ctx_ptr build_server_ctx(const tls_server_config& cfg, const tls_identity& id) {
  auto ctx = new_base_ctx(true);
  SSL_CTX* c = ctx.get();
  use_identity(c, id);
  if (cfg.client_verify != tls_peer_verify::none) {
    use_verify_ca(c, cfg.client_ca_file, "client CA");
    STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(cfg.client_ca_file.c_str());
    if (names == nullptr) {
      fail("no CA certificate in client CA file " + cfg.client_ca_file);
    }
    SSL_CTX_set_client_CA_list(c, names);
    SSL_CTX_set_verify(c,
                       cfg.client_verify == tls_peer_verify::require
                           ? SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT
                           : SSL_VERIFY_PEER,
                       nullptr);
  }
  if (!cfg.alpn.empty()) {
    auto& extras = extras_of(c);
    extras.alpn_wire = alpn_wire(cfg.alpn);
    SSL_CTX_set_alpn_select_cb(c, select_alpn, &extras);
  }
  return ctx;
}

}  // namespace

std::string take_openssl_error() {
  const unsigned long first = ERR_get_error();
  ERR_clear_error();
  if (first == 0) {
    return {};
  }
  if (const char* reason = ERR_reason_error_string(first)) {
    return reason;
  }
  char buf[256];
  ERR_error_string_n(first, buf, sizeof(buf));
  return buf;
}

std::string read_pem_file(const std::string& path, const std::string& what) {
  check_readable(path, what);
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  auto text = s.str();
  if (text.find("-----BEGIN ") == std::string::npos) {
    throw tls_config_error("tls: " + what + " " + path + " holds no PEM data");
  }
  return text;
}

std::shared_ptr<tls_context> tls_context::make_server(tls_server_config config) {
  if (config.identities.empty()) {
    throw tls_config_error("tls: a server needs a certificate and a key");
  }
  if (config.client_verify != tls_peer_verify::none && config.client_ca_file.empty()) {
    throw tls_config_error("tls: client certificates are asked for but no client CA file given");
  }
  std::shared_ptr<tls_context> ctx(new tls_context());
  ctx->server_ = std::move(config);
  ctx->ctx_ = ctx->build();
  return ctx;
}

std::shared_ptr<tls_context> tls_context::make_client(tls_client_config config) {
  std::shared_ptr<tls_context> ctx(new tls_context());
  ctx->client_ = std::move(config);
  ctx->ctx_ = ctx->build();
  return ctx;
}

ssl_ctx_ptr tls_context::build() const {
  if (server_) {
    auto main = build_server_ctx(*server_, server_->identities.front());
    if (server_->identities.size() > 1) {
      SSL_CTX_set_tlsext_servername_callback(main.get(), select_certificate);
      auto& extras = extras_of(main.get());
      for (std::size_t i = 0; i < server_->identities.size(); ++i) {
        // The default's own entry has no context (nothing to switch to, and no reference
        // from the context to itself).
        ssl_ctx_ptr alt = i == 0 ? nullptr : build_server_ctx(*server_, server_->identities[i]);
        X509* leaf = SSL_CTX_get0_certificate(i == 0 ? main.get() : alt.get());
        X509_up_ref(leaf);
        extras.sni.emplace_back(leaf, alt.release());
      }
    }
    return main;
  }
  auto ctx = new_base_ctx(false);
  SSL_CTX* c = ctx.get();
  if (client_->ca_file.empty()) {
    if (SSL_CTX_set_default_verify_paths(c) != 1) {
      fail("cannot load the system's CA certificates");
    }
  } else {
    use_verify_ca(c, client_->ca_file, "CA");
  }
  SSL_CTX_set_verify(c, SSL_VERIFY_PEER, nullptr);
  if (client_->identity) {
    use_identity(c, *client_->identity);
  }
  if (!client_->alpn.empty()) {
    const auto wire = alpn_wire(client_->alpn);
    // Returns 0 on success (unlike most of OpenSSL).
    if (SSL_CTX_set_alpn_protos(c, reinterpret_cast<const unsigned char*>(wire.data()),
                                static_cast<unsigned int>(wire.size())) != 0) {
      fail("cannot set ALPN protocols");
    }
  }
  return ctx;
}

std::optional<std::string> tls_context::reload() {
  ssl_ctx_ptr fresh;
  try {
    fresh = build();
  } catch (const tls_config_error& e) {
    return std::string(e.what());
  }
  const std::lock_guard lock(mutex_);
  ctx_ = std::move(fresh);
  ++generation_;
  return std::nullopt;
}

ssl_ptr tls_context::new_ssl(const std::string& server_name) const {
  ssl_ptr ssl;
  {
    const std::lock_guard lock(mutex_);
    ssl.reset(SSL_new(ctx_.get()));
  }
  if (!ssl) {
    return ssl;
  }
  if (server_) {
    SSL_set_accept_state(ssl.get());
    return ssl;
  }
  SSL_set_connect_state(ssl.get());
  if (!server_name.empty()) {
    unsigned char addr[16];
    const bool is_ip = inet_pton(AF_INET, server_name.c_str(), addr) == 1 ||
                       inet_pton(AF_INET6, server_name.c_str(), addr) == 1;
    if (is_ip) {
      X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl.get()), server_name.c_str());
    } else {
      SSL_set_tlsext_host_name(ssl.get(), server_name.c_str());
      SSL_set1_host(ssl.get(), server_name.c_str());
    }
  }
  return ssl;
}

ssl_ctx_ptr tls_context::native() const {
  const std::lock_guard lock(mutex_);
  SSL_CTX_up_ref(ctx_.get());
  return ssl_ctx_ptr(ctx_.get());
}

unsigned tls_context::generation() const {
  const std::lock_guard lock(mutex_);
  return generation_;
}

std::string tls_context::describe() const {
  std::string out;
  auto add = [&out](const std::string& f) {
    if (!f.empty()) {
      out += out.empty() ? f : ", " + f;
    }
  };
  if (server_) {
    for (const auto& id : server_->identities) {
      add(id.cert_file);
      add(id.key_file);
    }
    add(server_->client_ca_file);
  } else if (client_) {
    add(client_->ca_file);
    if (client_->identity) {
      add(client_->identity->cert_file);
      add(client_->identity->key_file);
    }
  }
  return out;
}

std::optional<tls_peer_certificate> verified_peer_certificate(const SSL* ssl) {
  X509* cert = SSL_get0_peer_certificate(ssl);
  if (cert == nullptr || SSL_get_verify_result(ssl) != X509_V_OK) {
    return std::nullopt;
  }
  tls_peer_certificate out;
  if (BIO* bio = BIO_new(BIO_s_mem())) {
    X509_NAME_print_ex(bio, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253);
    char* data = nullptr;
    const long n = BIO_get_mem_data(bio, &data);
    if (n > 0) {
      out.subject.assign(data, static_cast<std::size_t>(n));
    }
    BIO_free(bio);
  }
  auto* names =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (names != nullptr) {
    const int count = std::min(sk_GENERAL_NAME_num(names), k_max_sans);
    for (int i = 0; i < count; ++i) {
      const GENERAL_NAME* gn = sk_GENERAL_NAME_value(names, i);
      auto text = [](const ASN1_STRING* s) {
        return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                           static_cast<std::size_t>(ASN1_STRING_length(s)));
      };
      switch (gn->type) {
        case GEN_DNS:
          out.sans.push_back("DNS:" + text(gn->d.dNSName));
          break;
        case GEN_EMAIL:
          out.sans.push_back("email:" + text(gn->d.rfc822Name));
          break;
        case GEN_URI:
          out.sans.push_back("URI:" + text(gn->d.uniformResourceIdentifier));
          break;
        case GEN_IPADD: {
          const int len = ASN1_STRING_length(gn->d.iPAddress);
          const unsigned char* p = ASN1_STRING_get0_data(gn->d.iPAddress);
          char buf[INET6_ADDRSTRLEN] = {};
          if ((len == 4 && inet_ntop(AF_INET, p, buf, sizeof(buf)) != nullptr) ||
              (len == 16 && inet_ntop(AF_INET6, p, buf, sizeof(buf)) != nullptr)) {
            out.sans.push_back(std::string("IP:") + buf);
          }
          break;
        }
        default:
          break;
      }
    }
    GENERAL_NAMES_free(names);
  }
  return out;
}

}  // namespace gwx::net
