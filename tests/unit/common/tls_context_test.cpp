#include "common/net/tls_context.hpp"

#include <gtest/gtest.h>
#include <openssl/err.h>

#include <string>

#include "tests/unit/common/tls_test_pki.hpp"

namespace gwx::net {
namespace {

using test::test_pki;

// A server and a client SSL joined by an in-memory BIO pair.
struct tls_pair {
  ssl_ptr server;
  ssl_ptr client;

  tls_pair(const tls_context& server_ctx, const tls_context& client_ctx,
           const std::string& server_name = "localhost")
      : server(server_ctx.new_ssl()), client(client_ctx.new_ssl(server_name)) {
    BIO* a = nullptr;
    BIO* b = nullptr;
    BIO_new_bio_pair(&a, 0, &b, 0);
    SSL_set_bio(server.get(), a, a);
    SSL_set_bio(client.get(), b, b);
  }

  /// Runs both sides until both finished or one failed; true when both completed.
  bool handshake() {
    bool server_done = false;
    bool client_done = false;
    for (int round = 0; round < 20 && !(server_done && client_done); ++round) {
      for (auto* side : {client.get(), server.get()}) {
        bool& done = side == client.get() ? client_done : server_done;
        if (done) {
          continue;
        }
        const int r = SSL_do_handshake(side);
        if (r == 1) {
          done = true;
          continue;
        }
        const int err = SSL_get_error(side, r);
        if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) {
          ERR_clear_error();
          return false;
        }
      }
    }
    // TLS 1.3: the client's certificate is checked by the server after the client finished;
    // a refusal shows up on the client's first read.
    char byte = 0;
    const int r = SSL_write(client.get(), "x", 1);
    if (r != 1) {
      return false;
    }
    if (SSL_read(server.get(), &byte, 1) != 1) {
      ERR_clear_error();
      return false;
    }
    return server_done && client_done;
  }

  std::string server_subject_seen_by_client() const {
    X509* cert = SSL_get0_peer_certificate(client.get());
    if (cert == nullptr) {
      return {};
    }
    char buf[256];
    X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, buf, sizeof(buf));
    return buf;
  }
};

class tls_context_test : public ::testing::Test {
 protected:
  void SetUp() override {
    ca_ = pki_.make_ca("root");
    other_ca_ = pki_.make_ca("other");
    server_id_ = pki_.make_leaf("root", "server", "localhost", {"DNS:localhost", "IP:127.0.0.1"});
  }

  std::shared_ptr<tls_context> server(tls_server_config cfg = {}) {
    if (cfg.identities.empty()) {
      cfg.identities.push_back(server_id_);
    }
    return tls_context::make_server(std::move(cfg));
  }
  std::shared_ptr<tls_context> client(const std::string& ca,
                                      std::optional<tls_identity> id = std::nullopt,
                                      std::vector<std::string> alpn = {}) {
    tls_client_config cfg;
    cfg.ca_file = ca;
    cfg.identity = std::move(id);
    cfg.alpn = std::move(alpn);
    return tls_context::make_client(std::move(cfg));
  }

  /// A server asking for client certificates signed by the test CA.
  std::shared_ptr<tls_context> verifying_server(tls_peer_verify mode) {
    tls_server_config cfg;
    cfg.client_ca_file = ca_;
    cfg.client_verify = mode;
    return server(cfg);
  }
  /// Whether a client with a certificate from another CA gets through.
  bool stranger_admitted(const tls_context& s) {
    const auto id = pki_.make_leaf("other", "stranger", "stranger", {});
    auto stranger = client(ca_, id);
    tls_pair p(s, *stranger);
    return p.handshake();
  }

  test_pki pki_;
  std::string ca_;
  std::string other_ca_;
  tls_identity server_id_;
};

TEST_F(tls_context_test, client_trusting_the_ca_completes_the_handshake) {
  auto s = server();
  auto c = client(ca_);
  tls_pair p(*s, *c);
  ASSERT_TRUE(p.handshake());
  EXPECT_EQ(p.server_subject_seen_by_client(), "localhost");
  const int version = SSL_version(p.server.get());
  EXPECT_TRUE(version == TLS1_3_VERSION || version == TLS1_2_VERSION);
}

TEST_F(tls_context_test, client_trusting_another_ca_is_refused) {
  auto s = server();
  auto c = client(other_ca_);
  tls_pair p(*s, *c);
  EXPECT_FALSE(p.handshake());
  EXPECT_NE(SSL_get_verify_result(p.client.get()), X509_V_OK);
}

TEST_F(tls_context_test, client_checks_the_name_it_asked_for) {
  auto s = server();
  auto c = client(ca_);
  tls_pair p(*s, *c, "not-this-host.example");
  EXPECT_FALSE(p.handshake());
  tls_pair by_ip(*s, *c, "127.0.0.1");
  EXPECT_TRUE(by_ip.handshake());
}

TEST_F(tls_context_test, versions_below_tls12_are_refused) {
  auto s = server();
  auto c = client(ca_);
  tls_pair p(*s, *c);
  SSL_set_min_proto_version(p.client.get(), TLS1_VERSION);
  SSL_set_max_proto_version(p.client.get(), TLS1_1_VERSION);
  EXPECT_FALSE(p.handshake());

  tls_pair v12(*s, *c);
  SSL_set_max_proto_version(v12.client.get(), TLS1_2_VERSION);
  ASSERT_TRUE(v12.handshake());
  EXPECT_EQ(SSL_version(v12.server.get()), TLS1_2_VERSION);
  // Forward secret AEAD only.
  const std::string cipher = SSL_get_cipher_name(v12.server.get());
  EXPECT_EQ(cipher.rfind("ECDHE-", 0), 0U) << cipher;
}

TEST_F(tls_context_test, alpn_selects_http11_and_refuses_a_client_without_it) {
  tls_server_config cfg;
  cfg.alpn = {"http/1.1"};
  auto s = server(cfg);
  auto browser = client(ca_, std::nullopt, {"h2", "http/1.1"});
  tls_pair p(*s, *browser);
  ASSERT_TRUE(p.handshake());
  const unsigned char* proto = nullptr;
  unsigned len = 0;
  SSL_get0_alpn_selected(p.client.get(), &proto, &len);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(proto), len), "http/1.1");

  auto h2_only = client(ca_, std::nullopt, {"h2"});
  tls_pair refused(*s, *h2_only);
  EXPECT_FALSE(refused.handshake());

  auto no_alpn = client(ca_);
  tls_pair plain(*s, *no_alpn);
  EXPECT_TRUE(plain.handshake());
}

TEST_F(tls_context_test, sni_picks_the_certificate_that_names_the_host) {
  const auto a = pki_.make_leaf("root", "a", "a.example", {"DNS:a.example"});
  const auto b = pki_.make_leaf("root", "b", "b.example", {"DNS:*.b.example"});
  tls_server_config cfg;
  cfg.identities = {a, b};
  auto s = tls_context::make_server(cfg);
  auto c = client(ca_);

  tls_pair to_b(*s, *c, "x.b.example");
  ASSERT_TRUE(to_b.handshake());
  EXPECT_EQ(to_b.server_subject_seen_by_client(), "b.example");

  tls_pair to_a(*s, *c, "a.example");
  ASSERT_TRUE(to_a.handshake());
  EXPECT_EQ(to_a.server_subject_seen_by_client(), "a.example");

  // An unknown name gets the default (first) certificate, which the client then rejects.
  tls_pair unknown(*s, *c, "c.example");
  EXPECT_FALSE(unknown.handshake());
  EXPECT_EQ(SSL_get_verify_result(unknown.client.get()), X509_V_ERR_HOSTNAME_MISMATCH);
}

TEST_F(tls_context_test, required_client_certificate) {
  auto s = verifying_server(tls_peer_verify::require);

  auto anonymous = client(ca_);
  tls_pair refused(*s, *anonymous);
  EXPECT_FALSE(refused.handshake());

  EXPECT_FALSE(stranger_admitted(*s));

  const auto device_id =
      pki_.make_leaf("root", "device", "device-42", {"DNS:dev42.fleet", "URI:urn:dev:42"});
  auto device = client(ca_, device_id);
  tls_pair admitted(*s, *device);
  ASSERT_TRUE(admitted.handshake());
  const auto peer = verified_peer_certificate(admitted.server.get());
  ASSERT_TRUE(peer.has_value());
  EXPECT_EQ(peer->subject, "CN=device-42,O=gwx test");
  EXPECT_EQ(peer->sans, (std::vector<std::string>{"DNS:dev42.fleet", "URI:urn:dev:42"}));
}

TEST_F(tls_context_test, optional_client_certificate) {
  auto s = verifying_server(tls_peer_verify::optional);

  auto anonymous = client(ca_);
  tls_pair without(*s, *anonymous);
  ASSERT_TRUE(without.handshake());
  EXPECT_FALSE(verified_peer_certificate(without.server.get()).has_value());

  EXPECT_FALSE(stranger_admitted(*s));

  const auto device_id = pki_.make_leaf("root", "device", "device-7", {"IP:10.1.2.3"});
  auto device = client(ca_, device_id);
  tls_pair with(*s, *device);
  ASSERT_TRUE(with.handshake());
  const auto peer = verified_peer_certificate(with.server.get());
  ASSERT_TRUE(peer.has_value());
  EXPECT_EQ(peer->sans, std::vector<std::string>{"IP:10.1.2.3"});
}

TEST_F(tls_context_test, configuration_errors_name_the_file) {
  tls_server_config missing;
  missing.identities = {{(pki_.dir() / "nope.pem").string(), server_id_.key_file}};
  try {
    tls_context::make_server(missing);
    FAIL() << "no error";
  } catch (const tls_config_error& e) {
    EXPECT_NE(std::string(e.what()).find("nope.pem"), std::string::npos) << e.what();
  }

  const auto other = pki_.make_leaf("root", "other-server", "other", {});
  tls_server_config mismatch;
  mismatch.identities = {{server_id_.cert_file, other.key_file}};
  try {
    tls_context::make_server(mismatch);
    FAIL() << "no error";
  } catch (const tls_config_error& e) {
    EXPECT_NE(std::string(e.what()).find("does not match"), std::string::npos) << e.what();
  }

  tls_server_config garbage;
  garbage.identities = {
      {pki_.write_file("garbage.pem", "not a certificate\n"), server_id_.key_file}};
  EXPECT_THROW(tls_context::make_server(garbage), tls_config_error);

  tls_server_config no_ca;
  no_ca.identities = {server_id_};
  no_ca.client_verify = tls_peer_verify::require;
  EXPECT_THROW(tls_context::make_server(no_ca), tls_config_error);

  EXPECT_THROW(read_pem_file(pki_.write_file("empty.pem", ""), "CA"), tls_config_error);
  EXPECT_NE(read_pem_file(ca_, "CA").find("BEGIN CERTIFICATE"), std::string::npos);
}

TEST_F(tls_context_test, reload_swaps_certificates_for_new_connections_only) {
  const std::string cert_path = pki_.write_file("live.pem", "");
  const std::string key_path = pki_.write_file("live.key", "");
  auto copy = [](const std::string& from, const std::string& to) {
    std::filesystem::copy_file(from, to, std::filesystem::copy_options::overwrite_existing);
  };
  copy(server_id_.cert_file, cert_path);
  copy(server_id_.key_file, key_path);
  tls_server_config cfg;
  cfg.identities = {{cert_path, key_path}};
  auto s = tls_context::make_server(cfg);
  auto c = client(ca_);

  tls_pair before(*s, *c);
  ASSERT_TRUE(before.handshake());
  EXPECT_EQ(before.server_subject_seen_by_client(), "localhost");

  const auto renewed = pki_.make_leaf("root", "renewed", "renewed", {"DNS:localhost"});
  copy(renewed.cert_file, cert_path);
  copy(renewed.key_file, key_path);
  EXPECT_EQ(s->reload(), std::nullopt);
  EXPECT_EQ(s->generation(), 1U);

  tls_pair after(*s, *c);
  ASSERT_TRUE(after.handshake());
  EXPECT_EQ(after.server_subject_seen_by_client(), "renewed");
  // The connection made before the reload still works.
  char byte = 0;
  ASSERT_EQ(SSL_write(before.client.get(), "y", 1), 1);
  ASSERT_EQ(SSL_read(before.server.get(), &byte, 1), 1);
  EXPECT_EQ(byte, 'y');

  // A broken file: the error names it, and the renewed certificate stays in use.
  pki_.write_file("live.pem", "-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n");
  const auto error = s->reload();
  ASSERT_TRUE(error.has_value());
  EXPECT_NE(error->find("live.pem"), std::string::npos) << *error;
  EXPECT_EQ(s->generation(), 1U);
  tls_pair still(*s, *c);
  ASSERT_TRUE(still.handshake());
  EXPECT_EQ(still.server_subject_seen_by_client(), "renewed");
}

TEST_F(tls_context_test, native_context_outlives_a_reload) {
  auto s = server();
  auto held = s->native();
  ASSERT_EQ(s->reload(), std::nullopt);
  // Still usable after the context moved on.
  ssl_ptr ssl(SSL_new(held.get()));
  EXPECT_NE(ssl, nullptr);
  EXPECT_NE(s->native().get(), held.get());
}

}  // namespace
}  // namespace gwx::net
