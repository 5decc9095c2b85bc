#pragma once

#include <array>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/metrics/registry.hpp"
#include "common/registry/register_auth.hpp"
#include "gwx/registry/v1/registry.grpc.pb.h"

namespace gwx::registry {

/// Settings of one register.
struct register_config {
  /// Shared token; empty leaves access open.
  std::string token;
  /// How far a token proof's time may be from the register's clock, either way. Each proof is
  /// also good for one call only (its nonce is remembered for the window).
  std::chrono::milliseconds auth_window{60000};
  /// Also accept the version-1 proofs of older gateways and workers (replayable for the whole
  /// window and not bound to a method): only while they are being upgraded.
  bool accept_legacy_auth = false;
  /// Bounds every granted lease is clamped to.
  std::chrono::milliseconds min_ttl{1000};
  std::chrono::milliseconds max_ttl{60000};
  /// Lease granted when a Heartbeat asks for none (ttl_ms = 0), before clamping.
  std::chrono::milliseconds default_ttl{6000};
  /// Events queued for one Watch stream before it is ended (the watcher reconnects and starts
  /// over from a snapshot), so a stuck watcher cannot grow the register's memory without bound.
  std::size_t max_watch_backlog = 65536;
};

/// The RegisterService: leases keyed by gateway_id, a sweeper that drops a lease within
/// milliseconds of its expiry, and Watch streams that get a snapshot, then one event per change
/// in the order the changes happened.
///
/// A Heartbeat that changes a known gateway's info is reported as `added` with the new info
/// (no `removed` first): watchers treat `added` for a known id as "replace".
///
/// With a metrics registry it keeps gwx_register_* metrics there (see register/README.md); the
/// registry must outlive the service.
///
/// Thread-safe: gRPC calls it from any number of threads. Watch handlers block their gRPC
/// thread on a condition variable and wake at least once a second to notice cancellation.
class register_service final : public v1::RegisterService::Service {
 public:
  /// Starts the sweeper thread; registers its metrics in `metrics` unless it is null.
  explicit register_service(register_config config, metrics::registry* metrics = nullptr);
  ~register_service() override;
  register_service(const register_service&) = delete;
  register_service& operator=(const register_service&) = delete;

  /// Ends every Watch stream, refuses new ones and stops the sweeper. Idempotent.
  void shutdown();

  /// Number of live leases.
  std::size_t lease_count() const;

  /// Number of open Watch streams.
  std::size_t watcher_count() const;

  /// Creates or renews the caller's lease.
  grpc::Status Heartbeat(grpc::ServerContext* context, const v1::HeartbeatRequest* request,
                         v1::HeartbeatResponse* response) override;
  /// Drops a lease at once.
  grpc::Status Withdraw(grpc::ServerContext* context, const v1::WithdrawRequest* request,
                        v1::WithdrawResponse* response) override;
  /// The live set, sorted by gateway_id.
  grpc::Status List(grpc::ServerContext* context, const v1::ListRequest* request,
                    v1::ListResponse* response) override;
  /// A snapshot, then changes, until the client cancels or the register shuts down.
  grpc::Status Watch(grpc::ServerContext* context, const v1::WatchRequest* request,
                     grpc::ServerWriter<v1::WatchEvent>* writer) override;

 private:
  using clock = std::chrono::steady_clock;

  struct lease {
    v1::GatewayInfo info;
    clock::time_point expires;
    // Hash of the lease key the entry is bound to; empty when unbound (older gateways).
    std::string key_hash;
  };

  // Events waiting to be written to one Watch stream.
  struct watch_queue {
    std::vector<v1::WatchEvent> events;
    bool overflowed = false;
  };

  // Why a call was refused, for gwx_register_rpc_rejected_total{reason}.
  enum class rejection {
    auth_missing,
    auth_invalid,
    auth_stale,
    auth_replayed,
    invalid_argument,
    not_owner,
    shutting_down,
    count
  };

  void register_metrics(metrics::registry& reg);
  grpc::Status authorize(grpc::ServerContext* context, const char* method);
  grpc::Status reject(rejection reason, grpc::Status status);
  // True when a caller with this lease key hash may renew or withdraw `entry`.
  static bool owns(const lease& entry, const std::string& key_hash);
  void log_rejection(const std::string& peer, const char* method, const char* reason);
  void publish_locked(const v1::WatchEvent& event);
  void sweep();

  const register_config config_;
  auth_verifier auth_;

  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::condition_variable sweeper_wake_;
  std::map<std::string, lease> leases_;
  std::set<std::shared_ptr<watch_queue>> watchers_;
  bool shutting_down_ = false;

  // Rejected calls are logged at most every few seconds, with a count of the ones skipped.
  std::mutex rejection_mutex_;
  clock::time_point last_rejection_log_{};
  std::size_t rejections_unlogged_ = 0;

  std::thread sweeper_;

  // Metrics: detached (no-op) handles without a registry. The callback registrations come last
  // so that they are gone before the state their callbacks read.
  metrics::counter heartbeats_;
  metrics::counter leases_created_;
  metrics::counter leases_withdrawn_;
  metrics::counter leases_expired_;
  metrics::counter watch_overflows_;
  std::array<metrics::counter, static_cast<std::size_t>(rejection::count)> rejected_;
  std::vector<metrics::callback_registration> metric_callbacks_;
};

}  // namespace gwx::registry
