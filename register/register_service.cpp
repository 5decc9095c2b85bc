#include "register/register_service.hpp"

#include <google/protobuf/util/message_differencer.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <utility>
#include <vector>

#include "common/link_auth.hpp"
#include "common/registry/gateway_watcher.hpp"

namespace gwx::registry {
namespace {

// Ceiling on the sweeper's sleep, so a new short lease is never swept late, nor a stuck Watch
// stream cancelled late.
constexpr std::chrono::milliseconds k_sweep_poll{250};
// How long a Watch stream that must end waits for its write in flight before it is cancelled:
// a watcher that reads slowly still gets the reason (RESOURCE_EXHAUSTED), one that never reads
// gives its slot back.
constexpr std::chrono::milliseconds k_watch_end_grace{1000};

constexpr std::size_t k_max_id = 128;
constexpr std::size_t k_max_text = 512;
constexpr int k_max_listeners = 64;
constexpr std::size_t k_max_lease_key = 128;
// Bytes a repeated message field adds per element (tag and length) on top of the element.
constexpr std::size_t k_repeated_overhead = 8;

// Bounds what one gateway may make the register hold; returns the problem or nullptr.
const char* invalid_info(const v1::GatewayInfo& info) {
  if (info.gateway_id().empty() || info.gateway_id().size() > k_max_id) {
    return "gateway_id must be 1..128 bytes";
  }
  if (info.internal_address().empty() || info.internal_address().size() > k_max_text) {
    return "internal_address must be 1..512 bytes";
  }
  if (info.name().size() > k_max_text) {
    return "name longer than 512 bytes";
  }
  if (info.listeners_size() > k_max_listeners) {
    return "more than 64 listeners";
  }
  for (const auto& listener : info.listeners()) {
    if (listener.size() > k_max_text) {
      return "listener longer than 512 bytes";
    }
  }
  return nullptr;
}

// What the register keeps of a lease key: never the key itself.
std::string hash_lease_key(const std::string& key) {
  return key.empty() ? std::string() : link_auth::hmac_hex("gwx-register lease key", key);
}

// Both parts escaped once here: the label is logged as it is.
std::string watcher_label(const grpc::ServerContextBase* context, const std::string& name) {
  const auto peer = printable(context->peer());
  return name.empty() ? peer : printable(name) + " (" + peer + ")";
}

// A Watch refused before it began.
class refused_watch final : public grpc::ServerWriteReactor<v1::WatchEvent> {
 public:
  explicit refused_watch(grpc::Status status) { Finish(std::move(status)); }
  void OnDone() override { delete this; }
};

}  // namespace

register_service::register_service(register_config config, metrics::registry* metrics)
    : config_(std::move(config)),
      auth_(config_.token, config_.auth_window, config_.legacy_auth_window),
      limiter_(config_.peer_rate, config_.peer_burst) {
  if (metrics != nullptr) {
    register_metrics(*metrics);
  }
  sweeper_ = std::thread([this] { sweep(); });
  fanout_ = std::thread([this] { fan_out(); });
}

void register_service::register_metrics(metrics::registry& reg) {
  const auto counter = [&](const std::string& name, const std::string& help) {
    return reg.add_counter(name, help).with();
  };
  heartbeats_ =
      counter("gwx_register_heartbeats_total", "Heartbeats accepted (a lease created or renewed).");
  leases_created_ = counter("gwx_register_leases_created_total",
                            "Leases created for a gateway the register did not know.");
  leases_withdrawn_ = counter("gwx_register_leases_withdrawn_total",
                              "Leases dropped by Withdraw (a clean gateway shutdown).");
  leases_expired_ = counter("gwx_register_lease_expiries_total",
                            "Leases dropped because they lapsed without a heartbeat.");
  watch_overflows_ =
      counter("gwx_register_watch_overflows_total",
              "Watch streams ended because the watcher fell too far behind or read nothing for "
              "--watch-write-timeout-s.");
  watch_fanout_ =
      reg.add_histogram("gwx_register_watch_fanout_seconds",
                        "Time from a change (a gateway joining, leaving or lapsing) until every "
                        "Watch stream open then has written it to its connection, or ended.",
                        {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10})
          .with();
  auto& rejected =
      reg.add_counter("gwx_register_rpc_rejected_total", "Calls refused, by reason.", {"reason"});
  // Every reason exists from the start, so that it reads 0 rather than being absent.
  const std::pair<rejection, const char*> reasons[] = {
      {rejection::auth_missing, "auth_missing"},
      {rejection::auth_invalid, "auth_invalid"},
      {rejection::auth_stale, "auth_stale"},
      {rejection::auth_replayed, "auth_replayed"},
      {rejection::invalid_argument, "invalid_argument"},
      {rejection::entry_too_large, "entry_too_large"},
      {rejection::not_owner, "not_owner"},
      {rejection::rate_limited, "rate_limited"},
      {rejection::too_many_gateways, "too_many_gateways"},
      {rejection::too_many_watchers, "too_many_watchers"},
      {rejection::shutting_down, "shutting_down"}};
  for (const auto& [reason, label] : reasons) {
    rejected_[static_cast<std::size_t>(reason)] = rejected.with({label});
  }
  metric_callbacks_.push_back(
      reg.add_callback_gauge("gwx_register_leases", "Live gateway leases.").add({}, [this] {
        return static_cast<double>(lease_count());
      }));
  metric_callbacks_.push_back(
      reg.add_callback_gauge("gwx_register_watchers", "Open Watch streams.").add({}, [this] {
        return static_cast<double>(watcher_count());
      }));
  metric_callbacks_.push_back(
      reg.add_callback_gauge("gwx_register_watch_backlog_bytes",
                             "Bytes of changes queued for Watch streams, summed over streams.")
          .add({}, [this] { return static_cast<double>(watch_backlog_bytes()); }));
}

register_service::~register_service() {
  shutdown();
}

void register_service::shutdown() {
  {
    std::lock_guard lock(mutex_);
    shutting_down_ = true;
    for (const auto& stream : watchers_) {
      stream->end({grpc::StatusCode::UNAVAILABLE, "register shutting down"});
    }
    sweeper_wake_.notify_all();
    fanout_wake_.notify_all();
  }
  if (sweeper_.joinable()) {
    sweeper_.join();
  }
  if (fanout_.joinable()) {
    fanout_.join();
  }
}

void register_service::fan_out() {
  std::unique_lock lock(mutex_);
  while (true) {
    fanout_wake_.wait(lock, [&] { return fanout_pending_ || shutting_down_; });
    if (!fanout_pending_ && shutting_down_) {
      return;
    }
    fanout_pending_ = false;
    // Each stream's queue already holds the changes in order: starting writes late or twice
    // changes nothing but when the first byte leaves.
    const auto streams = watchers_;
    lock.unlock();
    for (const auto& stream : streams) {
      stream->flush();
    }
    lock.lock();
  }
}

std::size_t register_service::lease_count() const {
  std::lock_guard lock(mutex_);
  return leases_.size();
}

std::size_t register_service::watcher_count() const {
  std::lock_guard lock(mutex_);
  return static_cast<std::size_t>(std::count_if(
      watchers_.begin(), watchers_.end(), [](const auto& stream) { return !stream->done(); }));
}

std::size_t register_service::watch_backlog_bytes() const {
  std::lock_guard lock(mutex_);
  std::size_t bytes = 0;
  for (const auto& stream : watchers_) {
    bytes += stream->backlog_bytes();
  }
  return bytes;
}

grpc::Status register_service::admit(grpc::ServerContextBase* context, const char* method) {
  // The rate first: it is the cheapest check, and it also bounds the HMACs a caller can cost.
  if (!limiter_.allow(peer_host(context->peer()))) {
    log_rejection(context->peer(), method, "too many calls from this address");
    return reject(rejection::rate_limited,
                  {grpc::StatusCode::RESOURCE_EXHAUSTED, "too many calls from this address"});
  }
  return authorize(context, method);
}

grpc::Status register_service::authorize(grpc::ServerContextBase* context, const char* method) {
  if (config_.token.empty()) {
    return grpc::Status::OK;
  }
  const auto& metadata = context->client_metadata();
  const auto found = metadata.find(k_auth_metadata);
  if (found == metadata.end()) {
    log_rejection(context->peer(), method, "no x-gwx-auth metadata");
    return reject(rejection::auth_missing,
                  {grpc::StatusCode::UNAUTHENTICATED, "x-gwx-auth metadata required"});
  }
  switch (auth_.check(method, std::string_view(found->second.data(), found->second.size()))) {
    case auth_result::ok:
      break;
    case auth_result::invalid:
      // Never log the value: it is a proof (spent or not).
      log_rejection(context->peer(), method, "bad x-gwx-auth proof (wrong token or method?)");
      return reject(rejection::auth_invalid,
                    {grpc::StatusCode::UNAUTHENTICATED, "bad x-gwx-auth proof"});
    case auth_result::stale:
      log_rejection(context->peer(), method, "x-gwx-auth proof out of the time window (clocks?)");
      return reject(rejection::auth_stale,
                    {grpc::StatusCode::UNAUTHENTICATED, "stale x-gwx-auth proof (check clocks)"});
    case auth_result::replayed:
      log_rejection(context->peer(), method, "x-gwx-auth proof used before (replay)");
      return reject(rejection::auth_replayed,
                    {grpc::StatusCode::UNAUTHENTICATED, "x-gwx-auth proof already used"});
  }
  return grpc::Status::OK;
}

bool register_service::owns(const lease& entry, const std::string& key_hash) {
  return entry.key_hash.empty() || link_auth::equal(entry.key_hash, key_hash);
}

grpc::Status register_service::reject(rejection reason, grpc::Status status) {
  rejected_[static_cast<std::size_t>(reason)].inc();
  return status;
}

void register_service::log_rejection(const std::string& peer, const char* method,
                                     const char* reason) {
  std::uint64_t skipped = 0;
  {
    std::lock_guard lock(rejection_mutex_);
    if (!rejection_log_.count()) {
      return;
    }
    skipped = rejection_log_.take_pending() - 1;  // those since the last line, before this one
  }
  spdlog::warn("rejected {} from {}: {} ({} more rejected calls not logged since the last report)",
               method, printable(peer), reason, skipped);
}

void register_service::publish_locked(v1::WatchEvent event) {
  snapshot_cache_.reset();
  prune_watchers_locked();
  if (watchers_.empty()) {
    return;
  }
  auto fresh = std::make_shared<watch_change>();
  fresh->bytes = event.ByteSizeLong();
  fresh->event = std::move(event);
  // One share per stream and one for this loop, so it cannot settle before every push.
  fresh->pending.store(watchers_.size() + 1, std::memory_order_relaxed);
  fresh->on_settled = [fanout = watch_fanout_, at = std::chrono::steady_clock::now()] {
    fanout.observe(std::chrono::steady_clock::now() - at);
  };
  const watch_stream::change_ptr change = std::move(fresh);
  for (const auto& stream : watchers_) {
    if (!stream->push(change)) {
      // Cut rather than hold more: it resyncs from a snapshot when it reconnects.
      watch_overflows_.inc();
      ++watch_overflow_count_;
      spdlog::warn(
          "watcher {} fell behind (more than {} events or {} bytes queued); stream ended, it "
          "will resync",
          stream->label(), config_.max_watch_backlog, config_.max_watch_backlog_bytes);
    }
  }
  change->settle();
  fanout_pending_ = true;
  fanout_wake_.notify_one();
}

watch_stream::snapshot_ptr register_service::snapshot_locked() {
  if (snapshot_cache_) {
    return snapshot_cache_;
  }
  // The first piece is a `snapshot` with the total; the rest go as `added` events, which also
  // reads right to a watcher that predates pieces.
  v1::WatchEvent first;
  auto* snapshot = first.mutable_snapshot();
  snapshot->set_total(static_cast<std::uint32_t>(leases_.size()));
  std::vector<v1::WatchEvent> rest;
  std::size_t bytes = 0;
  for (const auto& [id, entry] : leases_) {
    const auto size = entry.info.ByteSizeLong() + k_repeated_overhead;
    if (rest.empty() &&
        (snapshot->gateways_size() == 0 || bytes + size <= config_.max_message_bytes)) {
      bytes += size;
      *snapshot->add_gateways() = entry.info;
    } else {
      *rest.emplace_back().mutable_added() = entry.info;
    }
  }
  auto pieces = std::make_shared<std::vector<v1::WatchEvent>>();
  pieces->reserve(rest.size() + 1);
  pieces->push_back(std::move(first));
  std::move(rest.begin(), rest.end(), std::back_inserter(*pieces));
  snapshot_cache_ = std::move(pieces);
  return snapshot_cache_;
}

void register_service::prune_watchers_locked() {
  std::erase_if(watchers_, [](const auto& stream) { return stream->done(); });
}

void register_service::erase_locked(std::map<std::string, lease>::iterator it) {
  if (auto count = per_peer_.find(it->second.peer); count != per_peer_.end()) {
    if (--count->second == 0) {
      per_peer_.erase(count);
    }
  }
  v1::WatchEvent event;
  *event.mutable_removed() = std::move(it->second.info);
  leases_.erase(it);
  publish_locked(std::move(event));
}

grpc::ServerUnaryReactor* register_service::Heartbeat(grpc::CallbackServerContext* context,
                                                      const v1::HeartbeatRequest* request,
                                                      v1::HeartbeatResponse* response) {
  auto* reactor = context->DefaultReactor();
  reactor->Finish(heartbeat(context, request, response));
  return reactor;
}

grpc::ServerUnaryReactor* register_service::Withdraw(grpc::CallbackServerContext* context,
                                                     const v1::WithdrawRequest* request,
                                                     v1::WithdrawResponse* /*response*/) {
  auto* reactor = context->DefaultReactor();
  reactor->Finish(withdraw(context, request));
  return reactor;
}

grpc::ServerUnaryReactor* register_service::List(grpc::CallbackServerContext* context,
                                                 const v1::ListRequest* request,
                                                 v1::ListResponse* response) {
  auto* reactor = context->DefaultReactor();
  reactor->Finish(list(context, request, response));
  return reactor;
}

grpc::Status register_service::heartbeat(grpc::ServerContextBase* context,
                                         const v1::HeartbeatRequest* request,
                                         v1::HeartbeatResponse* response) {
  if (auto status = admit(context, "Heartbeat"); !status.ok()) {
    return status;
  }
  const auto& info = request->gateway();
  if (const char* problem = invalid_info(info)) {
    return reject(rejection::invalid_argument, {grpc::StatusCode::INVALID_ARGUMENT, problem});
  }
  if (request->lease_key().size() > k_max_lease_key) {
    return reject(rejection::invalid_argument,
                  {grpc::StatusCode::INVALID_ARGUMENT, "lease_key longer than 128 bytes"});
  }
  if (info.ByteSizeLong() > config_.max_entry_bytes) {
    log_rejection(context->peer(), "Heartbeat", "announcement larger than --max-entry-bytes");
    return reject(rejection::entry_too_large,
                  {grpc::StatusCode::INVALID_ARGUMENT, "announcement larger than " +
                                                           std::to_string(config_.max_entry_bytes) +
                                                           " bytes (--max-entry-bytes)"});
  }
  const auto peer = peer_host(context->peer());
  const auto asked =
      request->ttl_ms() == 0 ? config_.default_ttl : std::chrono::milliseconds(request->ttl_ms());
  const auto ttl = std::clamp(asked, config_.min_ttl, config_.max_ttl);
  response->set_ttl_ms(static_cast<std::uint32_t>(ttl.count()));

  const auto key_hash = hash_lease_key(request->lease_key());
  bool created = false;
  bool updated = false;
  {
    std::lock_guard lock(mutex_);
    auto it = leases_.find(info.gateway_id());
    const bool inserted = it == leases_.end();
    if (inserted) {
      const auto held = per_peer_.find(peer);
      const char* full = nullptr;
      if (leases_.size() >= config_.max_gateways) {
        full = "register full (--max-gateways)";
      } else if (held != per_peer_.end() && held->second >= config_.max_gateways_per_peer) {
        full = "too many gateways from this address (--max-gateways-per-peer)";
      }
      if (full != nullptr) {
        log_rejection(context->peer(), "Heartbeat", full);
        return reject(rejection::too_many_gateways, {grpc::StatusCode::RESOURCE_EXHAUSTED, full});
      }
      it = leases_.try_emplace(info.gateway_id()).first;
      it->second.peer = peer;
      ++per_peer_[peer];
    } else if (!owns(it->second, key_hash)) {
      log_rejection(context->peer(), "Heartbeat", "gateway_id bound to another lease key");
      return reject(rejection::not_owner,
                    {grpc::StatusCode::PERMISSION_DENIED,
                     "gateway_id is registered by another process (lease key differs)"});
    }
    if (it->second.key_hash.empty()) {
      it->second.key_hash = key_hash;
    }
    if (inserted || !google::protobuf::util::MessageDifferencer::Equals(it->second.info, info)) {
      it->second.info = info;
      v1::WatchEvent event;
      *event.mutable_added() = info;
      publish_locked(std::move(event));
      created = inserted;
      updated = !inserted;
    }
    it->second.expires = clock::now() + ttl;
  }
  heartbeats_.inc();
  if (created) {
    leases_created_.inc();
  }
  response->set_created(created);
  if (created) {
    spdlog::info("gateway {} at {} registered by {}, lease {} ms", printable(info.gateway_id()),
                 printable(info.internal_address()), printable(context->peer()), ttl.count());
  } else if (updated) {
    spdlog::info("gateway {} at {} changed its announcement", printable(info.gateway_id()),
                 printable(info.internal_address()));
  }
  return grpc::Status::OK;
}

grpc::Status register_service::withdraw(grpc::ServerContextBase* context,
                                        const v1::WithdrawRequest* request) {
  if (auto status = admit(context, "Withdraw"); !status.ok()) {
    return status;
  }
  if (request->gateway_id().empty() || request->gateway_id().size() > k_max_id ||
      request->lease_key().size() > k_max_lease_key) {
    return reject(rejection::invalid_argument,
                  {grpc::StatusCode::INVALID_ARGUMENT,
                   "gateway_id must be 1..128 bytes, lease_key at most 128 bytes"});
  }
  const auto key_hash = hash_lease_key(request->lease_key());
  bool removed = false;
  {
    std::lock_guard lock(mutex_);
    auto it = leases_.find(request->gateway_id());
    if (it != leases_.end() && !owns(it->second, key_hash)) {
      log_rejection(context->peer(), "Withdraw", "gateway_id bound to another lease key");
      return reject(rejection::not_owner,
                    {grpc::StatusCode::PERMISSION_DENIED,
                     "gateway_id is registered by another process (lease key differs)"});
    }
    if (it != leases_.end()) {
      erase_locked(it);
      removed = true;
    }
  }
  if (removed) {
    leases_withdrawn_.inc();
    spdlog::info("gateway {} withdrawn", printable(request->gateway_id()));
  }
  return grpc::Status::OK;
}

grpc::Status register_service::list(grpc::ServerContextBase* context,
                                    const v1::ListRequest* request, v1::ListResponse* response) {
  if (auto status = admit(context, "List"); !status.ok()) {
    return status;
  }
  std::lock_guard lock(mutex_);
  // A page token is the last gateway_id of the previous page.
  auto it =
      request->page_token().empty() ? leases_.begin() : leases_.upper_bound(request->page_token());
  std::size_t bytes = 0;
  for (; it != leases_.end(); ++it) {
    const auto size = it->second.info.ByteSizeLong() + k_repeated_overhead;
    if (response->gateways_size() > 0 && bytes + size > config_.max_message_bytes) {
      response->set_next_page_token(response->gateways(response->gateways_size() - 1).gateway_id());
      break;
    }
    bytes += size;
    *response->add_gateways() = it->second.info;
  }
  return grpc::Status::OK;
}

grpc::ServerWriteReactor<v1::WatchEvent>* register_service::Watch(
    grpc::CallbackServerContext* context, const v1::WatchRequest* request) {
  if (auto status = admit(context, "Watch"); !status.ok()) {
    return new refused_watch(std::move(status));
  }
  if (request->watcher_name().size() > k_max_watcher_name) {
    return new refused_watch(
        reject(rejection::invalid_argument,
               {grpc::StatusCode::INVALID_ARGUMENT, "watcher_name longer than 256 bytes"}));
  }
  auto label = watcher_label(context, request->watcher_name());
  std::shared_ptr<watch_stream> stream;
  watch_stream::snapshot_ptr snapshot;
  {
    // Snapshot and subscription under one lock: no change can fall between them.
    std::lock_guard lock(mutex_);
    if (shutting_down_) {
      return new refused_watch(reject(rejection::shutting_down,
                                      {grpc::StatusCode::UNAVAILABLE, "register shutting down"}));
    }
    prune_watchers_locked();
    const auto peer = peer_host(context->peer());
    const char* full = nullptr;
    if (watchers_.size() >= config_.max_watchers) {
      full = "register full of watchers (--max-watchers)";
    } else if (static_cast<std::size_t>(
                   std::count_if(watchers_.begin(), watchers_.end(), [&](const auto& w) {
                     return w->peer() == peer;
                   })) >= config_.max_watchers_per_peer) {
      full = "too many watchers from this address (--max-watchers-per-peer)";
    }
    if (full != nullptr) {
      log_rejection(context->peer(), "Watch", full);
      return new refused_watch(
          reject(rejection::too_many_watchers, {grpc::StatusCode::RESOURCE_EXHAUSTED, full}));
    }
    snapshot = snapshot_locked();
    stream = std::make_shared<watch_stream>(label, peer, context, config_.max_watch_backlog,
                                            config_.max_watch_backlog_bytes);
    watchers_.push_back(stream);
  }
  spdlog::info("watcher {} connected", label);
  stream->start(std::move(snapshot));
  return stream.get();
}

void register_service::cancel_stuck_watchers(std::unique_lock<std::mutex>& lock) {
  prune_watchers_locked();
  const auto streams = watchers_;
  lock.unlock();
  const auto now = clock::now();
  const auto grace = std::min<clock::duration>(k_watch_end_grace, config_.watch_write_timeout);
  for (const auto& stream : streams) {
    if (stream->cancel_if_stuck(now, config_.watch_write_timeout, grace) ==
        watch_stream::stuck::stalled) {
      watch_overflows_.inc();
      ++watch_overflow_count_;
      spdlog::warn(
          "watcher {} read nothing for {} ms (a write to it made no progress); stream "
          "cancelled, it will resync",
          stream->label(), config_.watch_write_timeout.count());
    }
  }
  lock.lock();
}

void register_service::sweep() {
  std::unique_lock lock(mutex_);
  while (!shutting_down_) {
    cancel_stuck_watchers(lock);
    if (shutting_down_) {
      break;
    }
    const auto now = clock::now();
    auto next = now + k_sweep_poll;
    std::vector<std::string> lapsed;
    for (auto it = leases_.begin(); it != leases_.end();) {
      if (it->second.expires <= now) {
        lapsed.push_back(it->first);
        erase_locked(it++);
      } else {
        next = std::min(next, it->second.expires);
        ++it;
      }
    }
    if (!lapsed.empty()) {
      leases_expired_.inc(lapsed.size());
      lock.unlock();
      for (const auto& id : lapsed) {
        spdlog::warn("gateway {} dropped: lease lapsed", printable(id));
      }
      lock.lock();
      continue;
    }
    sweeper_wake_.wait_until(lock, next, [&] { return shutting_down_; });
  }
}

}  // namespace gwx::registry
