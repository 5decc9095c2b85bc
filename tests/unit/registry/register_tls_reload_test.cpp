// Component tests of the register's TLS reload (register_server::reload_tls, grpc_tls_provider):
// a real gRPC server over TLS on 127.0.0.1:0, certificates from a throw-away CA.
#include <grpc/grpc.h>
#include <grpcpp/security/auth_context.h>
#include <grpcpp/support/channel_arguments.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/registry/grpc_tls_provider.hpp"
#include "tests/unit/common/tls_test_pki.hpp"
#include "tests/unit/registry/registry_test_support.hpp"

namespace gwx::registry::test {
namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// A CA, two register certificates (A, B) and a client certificate; the register reads "live"
// files the tests overwrite.
struct reload_fixture {
  gwx::test::test_pki pki;
  std::string ca = pki.make_ca("reg");
  net::tls_identity a = pki.make_leaf("reg", "a", "register-a", {"IP:127.0.0.1"});
  net::tls_identity b = pki.make_leaf("reg", "b", "register-b", {"IP:127.0.0.1"});
  net::tls_identity client = pki.make_leaf("reg", "client", "client", {});
  tls_files live{(pki.dir() / "live.pem").string(), (pki.dir() / "live.key").string(),
                 pki.write_file("live-ca.pem", read_file(ca))};

  void use(const net::tls_identity& id, const std::string& key_file = {}) {
    pki.write_file("live.pem", read_file(id.cert_file));
    pki.write_file("live.key", read_file(key_file.empty() ? id.key_file : key_file));
  }

  // A stub on a channel of its own: a new TCP connection and TLS handshake, never one shared
  // with another channel.
  std::unique_ptr<v1::RegisterService::Stub> stub(std::uint16_t port) const {
    grpc::SslCredentialsOptions options;
    options.pem_root_certs = read_file(ca);
    options.pem_cert_chain = read_file(client.cert_file);
    options.pem_private_key = read_file(client.key_file);
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    return v1::RegisterService::NewStub(grpc::CreateCustomChannel(
        "127.0.0.1:" + std::to_string(port), grpc::SslCredentials(options), args));
  }

  // The CN of the certificate a new connection to the register is served ("" if the call fails).
  std::string served_cn(std::uint16_t port) const {
    auto s = stub(port);
    auto context = make_context();
    v1::ListResponse response;
    if (!s->List(context.get(), v1::ListRequest{}, &response).ok()) {
      return "";
    }
    const auto names = context->auth_context()->FindPropertyValues("x509_common_name");
    return names.empty() ? "" : std::string(names.front().data(), names.front().size());
  }
};

TEST(RegisterTlsReload, NewConnectionsGetTheNewCertificateAndWatchStreamsStay) {
  reload_fixture f;
  f.use(f.a);
  register_server server(local(0), {}, nullptr, f.live);
  ASSERT_TRUE(server.tls());
  EXPECT_EQ(f.served_cn(server.port()), "register-a");

  auto watcher = f.stub(server.port());
  auto watch = open_watch(*watcher);
  ASSERT_TRUE(watch.ok);
  auto gateway = f.stub(server.port());
  ASSERT_TRUE(heartbeat(*gateway, make_info("gw-before"), 5000).ok());
  v1::WatchEvent event;
  ASSERT_TRUE(watch.reader->Read(&event));
  EXPECT_EQ(event.added().gateway_id(), "gw-before");

  f.use(f.b);
  EXPECT_EQ(server.reload_tls(), std::nullopt);
  EXPECT_TRUE(eventually([&] { return f.served_cn(server.port()) == "register-b"; }))
      << "a new connection still sees " << f.served_cn(server.port());

  // The Watch stream and the gateway's connection made before the reload carry on.
  ASSERT_TRUE(heartbeat(*gateway, make_info("gw-after"), 5000).ok());
  ASSERT_TRUE(watch.reader->Read(&event));
  EXPECT_EQ(event.added().gateway_id(), "gw-after");
  EXPECT_EQ(server.service().lease_count(), 2U);
  watch.context->TryCancel();
}

TEST(RegisterTlsReload, FilesThatDoNotLoadKeepThePreviousCertificate) {
  reload_fixture f;
  f.use(f.a);
  register_server server(local(0), {}, nullptr, f.live);

  f.use(f.b, f.a.key_file);
  const auto mismatch = server.reload_tls();
  ASSERT_TRUE(mismatch.has_value());
  EXPECT_NE(mismatch->find("does not match"), std::string::npos) << *mismatch;
  EXPECT_NE(mismatch->find(f.live.key), std::string::npos) << *mismatch;

  f.pki.write_file("live.pem",
                   "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n");
  const auto broken = server.reload_tls();
  ASSERT_TRUE(broken.has_value());
  EXPECT_NE(broken->find(f.live.cert), std::string::npos) << *broken;

  f.use(f.a);
  std::filesystem::remove(f.live.ca);
  const auto missing = server.reload_tls();
  ASSERT_TRUE(missing.has_value());
  EXPECT_NE(missing->find(f.live.ca), std::string::npos) << *missing;

  EXPECT_EQ(f.served_cn(server.port()), "register-a");
}

TEST(RegisterTlsReload, PlaintextHasNothingToReload) {
  auto server = start_register();
  EXPECT_FALSE(server->tls());
  EXPECT_EQ(server->reload_tls(), std::nullopt);
}

TEST(RegisterTlsReload, BadFilesAtStartAreOneLine) {
  reload_fixture f;
  f.use(f.b, f.a.key_file);
  try {
    register_server server(local(0), {}, nullptr, f.live);
    FAIL() << "a key that does not match its certificate was accepted";
  } catch (const net::tls_config_error& e) {
    EXPECT_NE(std::string(e.what()).find("does not match"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace gwx::registry::test
