// The shared-token check: the proof format, the register refusing bad proofs on every RPC, and
// the token never leaving the process (not in metadata, not in logs).
#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>
#include <gtest/gtest.h>

#include <condition_variable>
#include <utility>

#include "common/link_auth.hpp"
#include "tests/unit/registry/registry_test_support.hpp"

namespace gwx::registry::test {
namespace {

const std::string k_token = "correct-horse-battery-staple";

std::string proof_at(const std::string& token, std::int64_t seconds) {
  const auto text = std::to_string(seconds);
  return text + ":" + link_auth::hmac_hex(token, text);
}

std::int64_t now_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

TEST(RegisterAuth, ProofCarriesTimeAndHmacButNotTheToken) {
  const auto value = make_auth_value(k_token);
  EXPECT_EQ(value.find(k_token), std::string::npos);
  const auto colon = value.find(':');
  ASSERT_NE(colon, std::string::npos);
  EXPECT_EQ(value.size() - colon - 1, 64U) << "hex of a SHA-256 HMAC";
  EXPECT_LE(std::abs(std::stoll(value.substr(0, colon)) - now_seconds()), 2);
  EXPECT_TRUE(check_auth_value(k_token, value));
  EXPECT_FALSE(check_auth_value("another-token", value));
  EXPECT_TRUE(make_auth_value("").empty());
}

TEST(RegisterAuth, RejectsStaleFutureAndMalformedProofs) {
  const auto now = now_seconds();
  EXPECT_TRUE(check_auth_value(k_token, proof_at(k_token, now - 250)));
  EXPECT_FALSE(check_auth_value(k_token, proof_at(k_token, now - 400)));
  EXPECT_FALSE(check_auth_value(k_token, proof_at(k_token, now + 400)));
  EXPECT_FALSE(check_auth_value(k_token, proof_at(k_token, now - 20), std::chrono::seconds(10)));

  auto upper = proof_at(k_token, now);
  for (auto& c : upper) {
    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  for (const std::string& bad :
       {std::string(), std::string(":"), std::string("abc:def"), std::to_string(now),
        ":" + link_auth::hmac_hex(k_token, std::to_string(now)), "-1:" + std::string(64, '0'),
        upper, proof_at(k_token, now) + "0", k_token}) {
    EXPECT_FALSE(check_auth_value(k_token, bad)) << "accepted '" << bad << "'";
  }
}

TEST(RegisterAuth, EveryRpcNeedsTheRightToken) {
  log_capture logs;
  register_config config;
  config.token = k_token;
  auto server = start_register(config);
  auto stub = make_stub(server->port());

  for (const std::string& token : {std::string(), std::string("wrong-token")}) {
    SCOPED_TRACE("token '" + token + "'");
    EXPECT_EQ(heartbeat(*stub, make_info("gw-1"), 1000, nullptr, token).error_code(),
              grpc::StatusCode::UNAUTHENTICATED);
    EXPECT_EQ(withdraw(*stub, "gw-1", token).error_code(), grpc::StatusCode::UNAUTHENTICATED);
    v1::ListResponse list;
    auto list_context = make_context(token);
    EXPECT_EQ(stub->List(list_context.get(), v1::ListRequest{}, &list).error_code(),
              grpc::StatusCode::UNAUTHENTICATED);
    auto watch = open_watch(*stub, token);
    EXPECT_FALSE(watch.ok);
    EXPECT_EQ(watch.reader->Finish().error_code(), grpc::StatusCode::UNAUTHENTICATED);
  }
  EXPECT_EQ(server->service().lease_count(), 0U);

  ASSERT_TRUE(heartbeat(*stub, make_info("gw-1"), 1000, nullptr, k_token).ok());
  EXPECT_EQ(list_ids(*stub, k_token), std::vector<std::string>{"gw-1"});
  auto watch = open_watch(*stub, k_token);
  ASSERT_TRUE(watch.ok);
  EXPECT_EQ(watch.snapshot.gateways_size(), 1);
  watch.context->TryCancel();
  EXPECT_TRUE(withdraw(*stub, "gw-1", k_token).ok());
  EXPECT_EQ(server->service().lease_count(), 0U);

  // Eight rejections above: reported, but rate-limited to one line, and never with a secret.
  EXPECT_EQ(logs.count({"rejected"}), 1U) << logs.text();
  EXPECT_EQ(logs.text().find(k_token), std::string::npos);
  EXPECT_EQ(logs.text().find("wrong-token"), std::string::npos);
}

TEST(RegisterAuth, LeaseKeeperAndWatcherWithWrongTokenAreRefused) {
  log_capture logs;
  register_config config;
  config.token = k_token;
  auto server = start_register(config);
  const auto address = server->address();

  lease_keeper keeper({local(server->port())}, "wrong-token", {"gw-1", "127.0.0.1:9100", {}, "n"},
                      1000ms);
  gateway_watcher watcher({local(server->port())}, "wrong-token", "test", nullptr);
  keeper.start();
  watcher.start();
  ASSERT_TRUE(eventually([&] {
    return logs.count({"lease keeper", address, "unreachable", "UNAUTHENTICATED"}) == 1 &&
           logs.count({"gateway watcher", address, "unreachable", "UNAUTHENTICATED"}) == 1;
  })) << logs.text();
  EXPECT_EQ(server->service().lease_count(), 0U);
  EXPECT_TRUE(watcher.current().empty());
  watcher.stop();
  keeper.stop();
}

// A register that only records the metadata it is sent.
class metadata_spy final : public v1::RegisterService::Service {
 public:
  grpc::Status Heartbeat(grpc::ServerContext* context, const v1::HeartbeatRequest*,
                         v1::HeartbeatResponse* response) override {
    record(context, "Heartbeat");
    response->set_ttl_ms(1000);
    return grpc::Status::OK;
  }
  grpc::Status Withdraw(grpc::ServerContext* context, const v1::WithdrawRequest*,
                        v1::WithdrawResponse*) override {
    record(context, "Withdraw");
    return grpc::Status::OK;
  }
  grpc::Status Watch(grpc::ServerContext* context, const v1::WatchRequest*,
                     grpc::ServerWriter<v1::WatchEvent>* writer) override {
    record(context, "Watch");
    v1::WatchEvent event;
    event.mutable_snapshot();
    writer->Write(event);
    std::unique_lock lock(mutex_);
    while (!context->IsCancelled()) {
      cancelled_.wait_for(lock, 20ms);
    }
    return grpc::Status::OK;
  }

  std::vector<std::pair<std::string, std::string>> seen() const {
    std::lock_guard lock(mutex_);
    return seen_;
  }
  std::size_t calls(const std::string& method) const {
    std::lock_guard lock(mutex_);
    return std::count(methods_.begin(), methods_.end(), method);
  }

 private:
  void record(grpc::ServerContext* context, const std::string& method) {
    std::lock_guard lock(mutex_);
    methods_.push_back(method);
    for (const auto& [key, value] : context->client_metadata()) {
      seen_.emplace_back(std::string(key.data(), key.size()),
                         std::string(value.data(), value.size()));
    }
  }

  mutable std::mutex mutex_;
  std::condition_variable cancelled_;
  std::vector<std::string> methods_;
  std::vector<std::pair<std::string, std::string>> seen_;
};

TEST(RegisterAuth, TokenNeverAppearsInMetadataSent) {
  metadata_spy spy;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&spy);
  auto server = builder.BuildAndStart();
  ASSERT_TRUE(server);
  ASSERT_NE(port, 0);

  {
    lease_keeper keeper({local(static_cast<std::uint16_t>(port))}, k_token,
                        {"gw-1", "127.0.0.1:9100", {}, "n"}, 1000ms);
    gateway_watcher watcher({local(static_cast<std::uint16_t>(port))}, k_token, "test", nullptr);
    keeper.start();
    watcher.start();
    ASSERT_TRUE(watcher.wait_for_snapshot(5s));
    ASSERT_TRUE(eventually([&] { return spy.calls("Heartbeat") >= 2; }));
    watcher.stop();
    keeper.stop();
  }
  EXPECT_EQ(spy.calls("Withdraw"), 1U);

  std::size_t proofs = 0;
  for (const auto& [key, value] : spy.seen()) {
    EXPECT_EQ(key.find(k_token), std::string::npos) << key;
    EXPECT_EQ(value.find(k_token), std::string::npos) << key << ": " << value;
    if (key == k_auth_metadata) {
      ++proofs;
      EXPECT_TRUE(check_auth_value(k_token, value)) << value;
    }
  }
  EXPECT_GE(proofs, 4U) << "every call (2+ heartbeats, watch, withdraw) carries a proof";
  server->Shutdown(std::chrono::system_clock::now() + 1s);
}

}  // namespace
}  // namespace gwx::registry::test
