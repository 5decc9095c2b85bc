// The shared-token check: the proof format, the register refusing bad, stale, replayed and
// other-method proofs on every RPC, the lease key that binds an entry to its gateway, and the
// token never leaving the process (not in metadata, not in logs).
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

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A version-2 proof built by hand from the documented format (registry.proto).
std::string v2_proof(const std::string& token, const std::string& method, std::int64_t unix_ms,
                     const std::string& nonce = "00112233445566778899aabbccddeeff") {
  const auto ms = std::to_string(unix_ms);
  return "v2:" + ms + ":" + nonce + ":" +
         link_auth::hmac_hex(token, "gwx-register-v2\n" + method + "\n" + ms + "\n" + nonce);
}

TEST(RegisterAuth, ProofIsBoundToTheMethodAndGoodForOneCall) {
  const auto proof = make_auth_proof(k_token, "Heartbeat");
  EXPECT_EQ(proof.find(k_token), std::string::npos);
  EXPECT_EQ(proof.rfind("v2:", 0), 0U) << proof;
  EXPECT_TRUE(make_auth_proof("", "Heartbeat").empty());
  EXPECT_NE(make_auth_proof(k_token, "Heartbeat"), proof) << "a fresh nonce per call";

  auth_verifier verifier(k_token);
  EXPECT_EQ(verifier.check("Withdraw", proof), auth_result::invalid) << "another method";
  EXPECT_EQ(auth_verifier("another-token").check("Heartbeat", proof), auth_result::invalid);
  EXPECT_EQ(verifier.check("Heartbeat", proof), auth_result::ok);
  EXPECT_EQ(verifier.check("Heartbeat", proof), auth_result::replayed);
  EXPECT_EQ(verifier.check("Heartbeat", make_auth_proof(k_token, "Heartbeat")), auth_result::ok);
  EXPECT_EQ(auth_verifier("").check("Heartbeat", "anything"), auth_result::ok);
}

TEST(RegisterAuth, ProofOutsideTheWindowIsStale) {
  auth_verifier verifier(k_token, std::chrono::seconds(10));
  EXPECT_EQ(verifier.check("List", v2_proof(k_token, "List", now_ms() - 5000)), auth_result::ok);
  EXPECT_EQ(
      verifier.check("List", v2_proof(k_token, "List", now_ms() - 20000, std::string(32, 'a'))),
      auth_result::stale);
  EXPECT_EQ(
      verifier.check("List", v2_proof(k_token, "List", now_ms() + 20000, std::string(32, 'b'))),
      auth_result::stale);
  // The time is under the HMAC: moving it breaks the proof.
  auto moved = v2_proof(k_token, "List", now_ms() - 20000, std::string(32, 'c'));
  moved.replace(3, 13, std::to_string(now_ms()).substr(0, 13));
  EXPECT_EQ(verifier.check("List", moved), auth_result::invalid);
}

TEST(RegisterAuth, MalformedProofsAreInvalid) {
  auth_verifier verifier(k_token);
  const auto good = v2_proof(k_token, "List", now_ms());
  auto upper = good;
  for (std::size_t i = 3; i < upper.size(); ++i) {
    upper[i] = static_cast<char>(std::toupper(static_cast<unsigned char>(upper[i])));
  }
  for (const std::string& bad :
       {std::string(), std::string("v2:"), std::string("v2:::"), good + "0", upper,
        v2_proof(k_token, "List", now_ms(), "short"),
        v2_proof(k_token, "List", now_ms(), "xyz0123456789abcdef"),
        v2_proof(k_token, "List", now_ms(), std::string(65, 'a')),
        "v2:-5:" + good.substr(good.find(':', 3) + 1), proof_at(k_token, now_seconds()), k_token}) {
    EXPECT_EQ(verifier.check("List", bad), auth_result::invalid) << "accepted '" << bad << "'";
  }
  EXPECT_EQ(verifier.check("List", good), auth_result::ok);
}

TEST(RegisterAuth, LegacyProofsOnlyWhenAskedFor) {
  const auto legacy = make_auth_value(k_token);
  EXPECT_EQ(auth_verifier(k_token).check("Heartbeat", legacy), auth_result::invalid);
  auth_verifier lenient(k_token, std::chrono::seconds(60), std::chrono::seconds(60));
  EXPECT_EQ(lenient.check("Heartbeat", legacy), auth_result::ok);
  EXPECT_EQ(lenient.check("Heartbeat", make_auth_proof(k_token, "Heartbeat")), auth_result::ok);
  EXPECT_EQ(lenient.check("Heartbeat", proof_at(k_token, now_seconds() - 120)),
            auth_result::invalid);
}

TEST(RegisterAuth, NonceMemoryIsBoundedWithoutOpeningReplays) {
  auth_verifier verifier(k_token, std::chrono::seconds(60), std::chrono::seconds(0), 4);
  const auto base = now_ms() - 1000;
  std::vector<std::string> proofs;
  for (int i = 0; i < 10; ++i) {
    proofs.push_back(v2_proof(k_token, "Watch", base + i, std::string(31, 'a') + char('0' + i)));
    ASSERT_EQ(verifier.check("Watch", proofs.back()), auth_result::ok) << i;
  }
  EXPECT_LE(verifier.remembered(), 4U);
  // Forgotten or not, none of them can be used again.
  for (const auto& proof : proofs) {
    EXPECT_EQ(verifier.check("Watch", proof), auth_result::replayed);
  }
  EXPECT_EQ(verifier.check("Watch", make_auth_proof(k_token, "Watch")), auth_result::ok);
}

TEST(RegisterAuth, ACallerWithAClockAheadCannotLiftTheFloorOverHonestProofs) {
  auth_verifier verifier(k_token, std::chrono::seconds(60), std::chrono::seconds(0), 4);
  const auto now = now_ms();
  // Accepted first, but timed 30 s ahead: the last of these to be forgotten.
  const auto ahead = v2_proof(k_token, "Watch", now + 30000, std::string(32, 'f'));
  ASSERT_EQ(verifier.check("Watch", ahead), auth_result::ok);
  for (int i = 0; i < 8; ++i) {
    ASSERT_EQ(verifier.check("Watch", v2_proof(k_token, "Watch", now - 5000 + i,
                                               std::string(31, 'b') + char('0' + i))),
              auth_result::ok)
        << i;
  }
  EXPECT_LE(verifier.remembered(), 4U);
  EXPECT_EQ(verifier.check("Watch", ahead), auth_result::replayed);
  // The floor stands at the earliest forgotten time, well before an honest proof made now.
  EXPECT_EQ(verifier.check("Watch", make_auth_proof(k_token, "Watch")), auth_result::ok);
  EXPECT_EQ(
      verifier.check("Watch", v2_proof(k_token, "Watch", now - 5000 + 3, std::string(32, 'c'))),
      auth_result::replayed)
      << "at or before a forgotten time is refused";
}

// The review (a code path): each check reads the clock before taking the lock, so a check can
// purge the nonces with a later clock than the one a check running beside it read. A proof at the
// edge of the window, accepted, then purged by a check whose clock read 1 ms later, used to pass
// again when checked against a clock read 1 ms earlier (a thread that read it before the purge).
TEST(RegisterAuth, ReplayAtTheWindowEdgeIsRefusedWhateverClockItsCheckRead) {
  std::int64_t clock_ms = 1'700'000'000'000;
  auth_verifier verifier(k_token, std::chrono::seconds(60), std::chrono::seconds(0), 100000,
                         [&clock_ms] { return clock_ms; });
  const auto edge = v2_proof(k_token, "Heartbeat", clock_ms - 60000);
  ASSERT_EQ(verifier.check("Heartbeat", edge), auth_result::ok) << "just in the window";
  ++clock_ms;
  ASSERT_EQ(
      verifier.check("Heartbeat", v2_proof(k_token, "Heartbeat", clock_ms, std::string(32, 'a'))),
      auth_result::ok);
  EXPECT_EQ(verifier.remembered(), 1U) << "the edge proof's nonce is out of the window, forgotten";
  --clock_ms;
  EXPECT_EQ(verifier.check("Heartbeat", edge), auth_result::stale)
      << "a replay checked against the earlier clock";
  EXPECT_EQ(verifier.check("Heartbeat",
                           v2_proof(k_token, "Heartbeat", clock_ms - 59999, std::string(32, 'b'))),
            auth_result::ok)
      << "a fresh proof above the purged horizon still passes";
}

TEST(RegisterAuth, LegacyProofFormat) {
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

// A raw call with a given x-gwx-auth value.
grpc::Status heartbeat_with_proof(v1::RegisterService::Stub& stub, const std::string& proof,
                                  const std::string& id = "gw-1") {
  grpc::ClientContext context;
  context.AddMetadata(k_auth_metadata, proof);
  context.set_deadline(std::chrono::system_clock::now() + 10s);
  v1::HeartbeatRequest request;
  *request.mutable_gateway() = make_info(id);
  v1::HeartbeatResponse response;
  return stub.Heartbeat(&context, request, &response);
}

TEST(RegisterAuth, RegisterRefusesReplayedOtherMethodAndLegacyProofs) {
  log_capture logs;
  register_config config;
  config.token = k_token;
  auto server = start_register(config);
  auto stub = make_stub(server->port());

  // A proof seen on the wire is good for that one call only.
  const auto captured = make_auth_proof(k_token, "Heartbeat");
  EXPECT_TRUE(heartbeat_with_proof(*stub, captured).ok());
  const auto replay = heartbeat_with_proof(*stub, captured, "gw-fake");
  EXPECT_EQ(replay.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_NE(replay.error_message().find("already used"), std::string::npos)
      << replay.error_message();
  // A proof made for a read is no proof for a write.
  EXPECT_EQ(heartbeat_with_proof(*stub, make_auth_proof(k_token, "List"), "gw-fake").error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  grpc::ClientContext withdraw_context;
  withdraw_context.AddMetadata(k_auth_metadata, make_auth_proof(k_token, "Heartbeat"));
  v1::WithdrawRequest withdraw_request;
  withdraw_request.set_gateway_id("gw-1");
  v1::WithdrawResponse withdraw_response;
  EXPECT_EQ(stub->Withdraw(&withdraw_context, withdraw_request, &withdraw_response).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  // The old, replayable form is refused unless the operator asks for it.
  EXPECT_EQ(heartbeat_with_proof(*stub, make_auth_value(k_token), "gw-fake").error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(list_ids(*stub, k_token), std::vector<std::string>{"gw-1"});
  EXPECT_EQ(logs.text().find(captured), std::string::npos) << "a proof is never logged";

  config.legacy_auth_window = std::chrono::seconds(300);
  auto lenient = start_register(config);
  auto lenient_stub = make_stub(lenient->port());
  EXPECT_TRUE(heartbeat_with_proof(*lenient_stub, make_auth_value(k_token)).ok());
  EXPECT_TRUE(heartbeat_with_proof(*lenient_stub, make_auth_proof(k_token, "Heartbeat")).ok());
}

TEST(RegisterAuth, LeaseKeyBindsAnEntryToItsGateway) {
  auto server = start_register();
  auto stub = make_stub(server->port());
  const std::string key = "0123456789abcdef-real";
  ASSERT_TRUE(heartbeat(*stub, make_info("gw-1", "10.0.0.1:9100"), 5000, nullptr, {}, key).ok());

  // Someone else cannot replace the entry (say, with their proxy's address) nor withdraw it.
  for (const std::string& other : {std::string(), std::string("another-key")}) {
    SCOPED_TRACE("key '" + other + "'");
    EXPECT_EQ(
        heartbeat(*stub, make_info("gw-1", "6.6.6.6:9100"), 5000, nullptr, {}, other).error_code(),
        grpc::StatusCode::PERMISSION_DENIED);
    EXPECT_EQ(withdraw(*stub, "gw-1", {}, other).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  }
  v1::ListResponse list;
  auto context = make_context();
  ASSERT_TRUE(stub->List(context.get(), v1::ListRequest{}, &list).ok());
  ASSERT_EQ(list.gateways_size(), 1);
  EXPECT_EQ(list.gateways(0).internal_address(), "10.0.0.1:9100");

  EXPECT_TRUE(heartbeat(*stub, make_info("gw-1", "10.0.0.1:9101"), 5000, nullptr, {}, key).ok());
  EXPECT_TRUE(withdraw(*stub, "gw-1", {}, key).ok());
  EXPECT_EQ(server->service().lease_count(), 0U);
  // A withdrawn id is free again.
  EXPECT_TRUE(heartbeat(*stub, make_info("gw-1"), 5000, nullptr, {}, "new-key").ok());
}

TEST(RegisterAuth, WithdrawFloodDoesNotMakeARealGatewayFlap) {
  log_capture logs;
  // No rate limit: the lease key alone must stop the attack.
  register_config config;
  config.peer_rate = 0;
  auto server = start_register(config);
  lease_keeper keeper({local(server->port())}, {}, {"gw-real", "127.0.0.1:9100", {}, "real"},
                      6000ms);
  change_recorder changes;
  gateway_watcher watcher({local(server->port())}, {}, "worker", changes.handler());
  keeper.start();
  watcher.start();
  ASSERT_TRUE(
      eventually([&] { return ids_of(watcher.current()) == std::vector<std::string>{"gw-real"}; }));

  // The attack of the review: withdraw the real gateway over and over, and try to take its id.
  auto attacker = make_stub(server->port());
  for (int i = 0; i < 50; ++i) {
    EXPECT_EQ(withdraw(*attacker, "gw-real").error_code(), grpc::StatusCode::PERMISSION_DENIED);
    EXPECT_EQ(heartbeat(*attacker, make_info("gw-real", "6.6.6.6:1")).error_code(),
              grpc::StatusCode::PERMISSION_DENIED);
  }
  EXPECT_EQ(list_ids(*attacker), std::vector<std::string>{"gw-real"});
  for (const auto& set : changes.history()) {
    EXPECT_EQ(set, std::vector<std::string>{"gw-real"}) << "the watcher saw the gateway go";
  }
  EXPECT_EQ(logs.count({"no register token set"}), 1U) << logs.text();

  // Its own withdraw still works: the keeper sends its key.
  keeper.stop();
  EXPECT_EQ(server->service().lease_count(), 0U);
  watcher.stop();
}

TEST(RegisterAuth, LeaseKeeperWithATokenDoesNotWarn) {
  log_capture logs;
  register_config config;
  config.token = k_token;
  auto server = start_register(config);
  lease_keeper keeper({local(server->port())}, k_token, {"gw-1", "127.0.0.1:9100", {}, "n"},
                      3000ms);
  keeper.start();
  ASSERT_TRUE(eventually([&] { return server->service().lease_count() == 1; }));
  keeper.stop();
  EXPECT_EQ(server->service().lease_count(), 0U) << "the withdraw carried a valid proof";
  EXPECT_EQ(logs.count({"no register token set"}), 0U) << logs.text();
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

  struct entry {
    std::string method;
    std::string key;
    std::string value;
  };
  std::vector<entry> seen() const {
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
      seen_.push_back(
          {method, std::string(key.data(), key.size()), std::string(value.data(), value.size())});
    }
  }

  mutable std::mutex mutex_;
  std::condition_variable cancelled_;
  std::vector<std::string> methods_;
  std::vector<entry> seen_;
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
  auth_verifier verifier(k_token);
  for (const auto& [method, key, value] : spy.seen()) {
    EXPECT_EQ(key.find(k_token), std::string::npos) << key;
    EXPECT_EQ(value.find(k_token), std::string::npos) << key << ": " << value;
    if (key == k_auth_metadata) {
      ++proofs;
      EXPECT_EQ(verifier.check(method, value), auth_result::ok) << method << ": " << value;
    }
  }
  EXPECT_GE(proofs, 4U) << "every call (2+ heartbeats, watch, withdraw) carries a proof";
  server->Shutdown(std::chrono::system_clock::now() + 1s);
}

}  // namespace
}  // namespace gwx::registry::test
