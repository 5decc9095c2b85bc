#pragma once

// A throw-away PKI for tests: a CA and certificates signed by it (EC P-256), written as PEM
// files into a fresh temporary directory that is removed with the object.

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/net/tls_context.hpp"

namespace gwx::test {

class test_pki {
 public:
  test_pki() {
    std::string templ = (std::filesystem::temp_directory_path() / "gwx-tls-XXXXXX").string();
    if (mkdtemp(templ.data()) == nullptr) {
      throw std::runtime_error("mkdtemp failed");
    }
    dir_ = templ;
  }
  test_pki(const test_pki&) = delete;
  test_pki& operator=(const test_pki&) = delete;
  ~test_pki() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  const std::filesystem::path& dir() const { return dir_; }

  /// A self-signed CA named `name`; returns the path of its certificate (PEM).
  std::string make_ca(const std::string& name) {
    auto& ca = cas_.emplace_back();
    ca.key = new_key();
    ca.cert = make_cert(name, {}, ca.key.get(), nullptr, nullptr, true);
    ca.name = name;
    return write_cert(name + "-ca.pem", ca.cert.get(), nullptr);
  }

  /// A certificate for `cn` with subjectAltName `sans` ("DNS:x", "IP:1.2.3.4", …), signed by
  /// the CA `ca_name`: writes NAME.pem (leaf then CA) and NAME.key; returns their paths.
  net::tls_identity make_leaf(const std::string& ca_name, const std::string& file_name,
                              const std::string& cn, const std::vector<std::string>& sans) {
    const auto& ca = find(ca_name);
    auto key = new_key();
    auto cert = make_cert(cn, sans, key.get(), ca.cert.get(), ca.key.get(), false);
    net::tls_identity id;
    id.cert_file = write_cert(file_name + ".pem", cert.get(), ca.cert.get());
    id.key_file = (dir_ / (file_name + ".key")).string();
    FILE* f = std::fopen(id.key_file.c_str(), "w");
    PEM_write_PrivateKey(f, key.get(), nullptr, nullptr, 0, nullptr, nullptr);
    std::fclose(f);
    return id;
  }

  /// Writes `text` to a file in the directory; returns its path.
  std::string write_file(const std::string& name, const std::string& text) {
    const auto path = (dir_ / name).string();
    FILE* f = std::fopen(path.c_str(), "w");
    std::fwrite(text.data(), 1, text.size(), f);
    std::fclose(f);
    return path;
  }

 private:
  struct key_free {
    void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
  };
  struct cert_free {
    void operator()(X509* c) const { X509_free(c); }
  };
  using key_ptr = std::unique_ptr<EVP_PKEY, key_free>;
  using cert_ptr = std::unique_ptr<X509, cert_free>;
  struct authority {
    std::string name;
    key_ptr key;
    cert_ptr cert;
  };

  static key_ptr new_key() { return key_ptr(EVP_EC_gen("P-256")); }

  static void add_ext(X509* cert, X509* issuer, int nid, const std::string& value) {
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer != nullptr ? issuer : cert, cert, nullptr, nullptr, 0);
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
    X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
  }

  cert_ptr make_cert(const std::string& cn, const std::vector<std::string>& sans, EVP_PKEY* key,
                     X509* issuer, EVP_PKEY* issuer_key, bool is_ca) {
    cert_ptr cert(X509_new());
    X509_set_version(cert.get(), 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), ++serial_);
    X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
    X509_gmtime_adj(X509_getm_notAfter(cert.get()), 24L * 3600);
    X509_set_pubkey(cert.get(), key);
    X509_NAME* name = X509_get_subject_name(cert.get());
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>("gwx test"), -1, -1, 0);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
    X509_set_issuer_name(cert.get(), issuer != nullptr ? X509_get_subject_name(issuer) : name);
    if (is_ca) {
      add_ext(cert.get(), issuer, NID_basic_constraints, "critical,CA:TRUE");
      add_ext(cert.get(), issuer, NID_key_usage, "critical,keyCertSign,cRLSign");
    } else {
      add_ext(cert.get(), issuer, NID_basic_constraints, "CA:FALSE");
      add_ext(cert.get(), issuer, NID_ext_key_usage, "serverAuth,clientAuth");
    }
    if (!sans.empty()) {
      std::string list;
      for (const auto& s : sans) {
        list += (list.empty() ? "" : ",") + s;
      }
      add_ext(cert.get(), issuer, NID_subject_alt_name, list);
    }
    X509_sign(cert.get(), issuer_key != nullptr ? issuer_key : key, EVP_sha256());
    return cert;
  }

  std::string write_cert(const std::string& file, X509* cert, X509* chain) {
    const auto path = (dir_ / file).string();
    FILE* f = std::fopen(path.c_str(), "w");
    PEM_write_X509(f, cert);
    if (chain != nullptr) {
      PEM_write_X509(f, chain);
    }
    std::fclose(f);
    return path;
  }

  const authority& find(const std::string& name) const {
    for (const auto& a : cas_) {
      if (a.name == name) {
        return a;
      }
    }
    throw std::runtime_error("no CA " + name);
  }

  std::filesystem::path dir_;
  std::vector<authority> cas_;
  long serial_ = 0;
};

}  // namespace gwx::test
