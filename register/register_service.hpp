#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "common/logging.hpp"
#include "common/metrics/registry.hpp"
#include "common/registry/register_auth.hpp"
#include "gwx/registry/v1/registry.grpc.pb.h"
#include "register/peer_limiter.hpp"
#include "register/watch_stream.hpp"

namespace gwx::registry {

/// Settings of one register.
struct register_config {
  /// Shared token; empty leaves access open.
  std::string token;
  /// How far a token proof's time may be from the register's clock, either way. Each proof is
  /// also good for one call only (its nonce is remembered for the window).
  std::chrono::milliseconds auth_window{60000};
  /// Above zero: also accept the version-1 proofs of older gateways and workers within this
  /// window (replayable within it and not bound to a method), only while they are upgraded.
  std::chrono::milliseconds legacy_auth_window{0};
  /// Bounds every granted lease is clamped to.
  std::chrono::milliseconds min_ttl{1000};
  std::chrono::milliseconds max_ttl{60000};
  /// Lease granted when a Heartbeat asks for none (ttl_ms = 0), before clamping.
  std::chrono::milliseconds default_ttl{6000};
  /// Most gateways held at once, and most held for callers from one address; a Heartbeat that
  /// would create one more is refused (RESOURCE_EXHAUSTED) while renewals go on.
  std::size_t max_gateways = 1024;
  std::size_t max_gateways_per_peer = 64;
  /// Largest announcement (serialized GatewayInfo) accepted, in bytes.
  std::size_t max_entry_bytes = 4096;
  /// Calls per second (sustained) and at once (burst) allowed from one caller address, over all
  /// RPCs; beyond them calls are refused with RESOURCE_EXHAUSTED. Rate 0: no limit.
  double peer_rate = 50;
  double peer_burst = 100;
  /// Events and bytes queued for one Watch stream before it is ended (the watcher reconnects and
  /// starts over from a snapshot), so a stuck watcher cannot grow the register's memory without
  /// bound.
  std::size_t max_watch_backlog = 65536;
  std::size_t max_watch_backlog_bytes = 4 << 20;
  /// A Watch write (one snapshot piece or change, at most max_message_bytes) not done after this
  /// long means the watcher reads nothing: its stream is cancelled, which frees its slot and the
  /// bytes gRPC holds for it. A stream that must end (cut for falling behind, or the register
  /// shutting down) with a write stuck is cancelled after at most a second.
  std::chrono::milliseconds watch_write_timeout{30000};
  /// Most Watch streams open at once, and most open for callers from one address (each costs
  /// tens of KB in gRPC's buffers); a Watch beyond them is refused (RESOURCE_EXHAUSTED) and the
  /// watcher retries with backoff.
  std::size_t max_watchers = 4096;
  std::size_t max_watchers_per_peer = 256;
  /// Budget of one message the register sends (a Watch snapshot piece, a List page): far below
  /// gRPC's default 4 MB receive limit, whatever the entries.
  std::size_t max_message_bytes = 1 << 20;
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
/// Floods are bounded: entries (in all, per caller address, in bytes), calls per caller address,
/// watchers (in all, per caller address), each watcher's backlog (in events and bytes; a
/// watcher past it is cut and resyncs) and how long one of its writes may wait for it to read.
/// Snapshots and List answers go in pieces of at most max_message_bytes.
///
/// Served on gRPC's callback API: no call holds a thread. Unary calls answer at once (a short
/// lock); a Watch stream is a watch_stream that gRPC's completion threads drive and to which
/// every change is pushed as it happens, so thousands of watchers cost memory, not threads.
/// Thread-safe.
class register_service final : public v1::RegisterService::CallbackService {
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

  /// Bytes of events queued for all Watch streams (an event queued for several counts once each).
  std::size_t watch_backlog_bytes() const;

  /// Watch streams ended so far because they fell behind (or read nothing for
  /// watch_write_timeout).
  std::size_t watch_overflow_count() const { return watch_overflow_count_.load(); }

  /// Creates or renews the caller's lease.
  grpc::ServerUnaryReactor* Heartbeat(grpc::CallbackServerContext* context,
                                      const v1::HeartbeatRequest* request,
                                      v1::HeartbeatResponse* response) override;
  /// Drops a lease at once.
  grpc::ServerUnaryReactor* Withdraw(grpc::CallbackServerContext* context,
                                     const v1::WithdrawRequest* request,
                                     v1::WithdrawResponse* response) override;
  /// The live set, sorted by gateway_id, one page at a time.
  grpc::ServerUnaryReactor* List(grpc::CallbackServerContext* context,
                                 const v1::ListRequest* request,
                                 v1::ListResponse* response) override;
  /// A snapshot, then changes, until the client cancels or the register shuts down.
  grpc::ServerWriteReactor<v1::WatchEvent>* Watch(grpc::CallbackServerContext* context,
                                                  const v1::WatchRequest* request) override;

 private:
  using clock = std::chrono::steady_clock;

  struct lease {
    v1::GatewayInfo info;
    clock::time_point expires;
    // Hash of the lease key the entry is bound to; empty when unbound (older gateways).
    std::string key_hash;
    // Address of the caller that created it, for max_gateways_per_peer.
    std::string peer;
  };

  // Why a call was refused, for gwx_register_rpc_rejected_total{reason}.
  enum class rejection {
    auth_missing,
    auth_invalid,
    auth_stale,
    auth_replayed,
    invalid_argument,
    entry_too_large,
    not_owner,
    rate_limited,
    too_many_gateways,
    too_many_watchers,
    shutting_down,
    count
  };

  void register_metrics(metrics::registry& reg);
  grpc::Status heartbeat(grpc::ServerContextBase* context, const v1::HeartbeatRequest* request,
                         v1::HeartbeatResponse* response);
  grpc::Status withdraw(grpc::ServerContextBase* context, const v1::WithdrawRequest* request);
  grpc::Status list(grpc::ServerContextBase* context, const v1::ListRequest* request,
                    v1::ListResponse* response);
  grpc::Status authorize(grpc::ServerContextBase* context, const char* method);
  grpc::Status reject(rejection reason, grpc::Status status);
  // True when a caller with this lease key hash may renew or withdraw `entry`.
  static bool owns(const lease& entry, const std::string& key_hash);
  void log_rejection(const std::string& peer, const char* method, const char* reason);
  grpc::Status admit(grpc::ServerContextBase* context, const char* method);
  void publish_locked(v1::WatchEvent event);
  void erase_locked(std::map<std::string, lease>::iterator it);
  // The snapshot in pieces of at most max_message_bytes, shared until the set changes.
  watch_stream::snapshot_ptr snapshot_locked();
  void prune_watchers_locked();
  // Cancels the Watch streams whose write is stuck (see watch_stream::cancel_if_stuck); unlocks
  // `lock` (on mutex_) meanwhile.
  void cancel_stuck_watchers(std::unique_lock<std::mutex>& lock);
  void sweep();
  // The fan-out thread: starts the writes of what publish_locked() queued on every stream.
  void fan_out();

  const register_config config_;
  auth_verifier auth_;

  mutable std::mutex mutex_;
  std::condition_variable sweeper_wake_;
  std::map<std::string, lease> leases_;
  // Open streams, and ended ones until the sweeper drops them.
  std::vector<std::shared_ptr<watch_stream>> watchers_;
  watch_stream::snapshot_ptr snapshot_cache_;
  // Gateways held per creating caller address.
  std::unordered_map<std::string, std::size_t> per_peer_;
  peer_limiter limiter_;
  std::atomic<std::size_t> watch_overflow_count_{0};
  bool shutting_down_ = false;

  // Rejected calls are logged at most every 10 s, with a count of the ones skipped.
  std::mutex rejection_mutex_;
  log_throttle rejection_log_;  ///< under rejection_mutex_

  std::thread sweeper_;
  // Starts the writes of published changes outside mutex_, so a change costs the call that made
  // it (and every caller waiting for mutex_) only the queueing, not 2,000 stream writes.
  std::thread fanout_;
  std::condition_variable fanout_wake_;
  bool fanout_pending_ = false;

  // Metrics: detached (no-op) handles without a registry. The callback registrations come last
  // so that they are gone before the state their callbacks read.
  metrics::counter heartbeats_;
  metrics::counter leases_created_;
  metrics::counter leases_withdrawn_;
  metrics::counter leases_expired_;
  metrics::counter watch_overflows_;
  metrics::histogram watch_fanout_;
  std::array<metrics::counter, static_cast<std::size_t>(rejection::count)> rejected_;
  std::vector<metrics::callback_registration> metric_callbacks_;
};

}  // namespace gwx::registry
