#include "register/register_service.hpp"

#include <google/protobuf/util/message_differencer.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <utility>
#include <vector>

#include "common/link_auth.hpp"

namespace gwx::registry {
namespace {

constexpr std::chrono::seconds k_rejection_log_interval{10};
// Watch handlers re-check cancellation at least this often.
constexpr std::chrono::seconds k_watch_poll{1};
// Ceiling on the sweeper's sleep, so a new short lease is never swept late.
constexpr std::chrono::milliseconds k_sweep_poll{250};

constexpr std::size_t k_max_id = 128;
constexpr std::size_t k_max_text = 512;
constexpr int k_max_listeners = 64;
constexpr std::size_t k_max_lease_key = 128;

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

std::string watcher_label(const grpc::ServerContext* context, const std::string& name) {
  return name.empty() ? context->peer() : name + " (" + context->peer() + ")";
}

}  // namespace

register_service::register_service(register_config config, metrics::registry* metrics)
    : config_(std::move(config)),
      auth_(config_.token, config_.auth_window, config_.accept_legacy_auth) {
  if (metrics != nullptr) {
    register_metrics(*metrics);
  }
  sweeper_ = std::thread([this] { sweep(); });
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
  watch_overflows_ = counter("gwx_register_watch_overflows_total",
                             "Watch streams ended because the watcher fell too far behind.");
  auto& rejected =
      reg.add_counter("gwx_register_rpc_rejected_total", "Calls refused, by reason.", {"reason"});
  // Every reason exists from the start, so that it reads 0 rather than being absent.
  const std::pair<rejection, const char*> reasons[] = {
      {rejection::auth_missing, "auth_missing"},
      {rejection::auth_invalid, "auth_invalid"},
      {rejection::auth_stale, "auth_stale"},
      {rejection::auth_replayed, "auth_replayed"},
      {rejection::invalid_argument, "invalid_argument"},
      {rejection::not_owner, "not_owner"},
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
}

register_service::~register_service() {
  shutdown();
}

void register_service::shutdown() {
  {
    std::lock_guard lock(mutex_);
    shutting_down_ = true;
    changed_.notify_all();
    sweeper_wake_.notify_all();
  }
  if (sweeper_.joinable()) {
    sweeper_.join();
  }
}

std::size_t register_service::lease_count() const {
  std::lock_guard lock(mutex_);
  return leases_.size();
}

std::size_t register_service::watcher_count() const {
  std::lock_guard lock(mutex_);
  return watchers_.size();
}

grpc::Status register_service::authorize(grpc::ServerContext* context, const char* method) {
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
  std::size_t skipped = 0;
  {
    std::lock_guard lock(rejection_mutex_);
    const auto now = clock::now();
    if (last_rejection_log_ != clock::time_point{} &&
        now - last_rejection_log_ < k_rejection_log_interval) {
      ++rejections_unlogged_;
      return;
    }
    last_rejection_log_ = now;
    skipped = std::exchange(rejections_unlogged_, 0);
  }
  spdlog::warn("rejected {} from {}: {} ({} more rejected calls not logged since the last report)",
               method, peer, reason, skipped);
}

void register_service::publish_locked(const v1::WatchEvent& event) {
  for (const auto& queue : watchers_) {
    if (queue->overflowed) {
      continue;
    }
    if (queue->events.size() >= config_.max_watch_backlog) {
      queue->overflowed = true;
      queue->events.clear();
      continue;
    }
    queue->events.push_back(event);
  }
  changed_.notify_all();
}

grpc::Status register_service::Heartbeat(grpc::ServerContext* context,
                                         const v1::HeartbeatRequest* request,
                                         v1::HeartbeatResponse* response) {
  if (auto status = authorize(context, "Heartbeat"); !status.ok()) {
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
  const auto asked =
      request->ttl_ms() == 0 ? config_.default_ttl : std::chrono::milliseconds(request->ttl_ms());
  const auto ttl = std::clamp(asked, config_.min_ttl, config_.max_ttl);
  response->set_ttl_ms(static_cast<std::uint32_t>(ttl.count()));

  const auto key_hash = hash_lease_key(request->lease_key());
  bool created = false;
  bool updated = false;
  {
    std::lock_guard lock(mutex_);
    auto [it, inserted] = leases_.try_emplace(info.gateway_id());
    if (!inserted && !owns(it->second, key_hash)) {
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
      publish_locked(event);
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
    spdlog::info("gateway {} at {} registered by {}, lease {} ms", info.gateway_id(),
                 info.internal_address(), context->peer(), ttl.count());
  } else if (updated) {
    spdlog::info("gateway {} at {} changed its announcement", info.gateway_id(),
                 info.internal_address());
  }
  return grpc::Status::OK;
}

grpc::Status register_service::Withdraw(grpc::ServerContext* context,
                                        const v1::WithdrawRequest* request,
                                        v1::WithdrawResponse* /*response*/) {
  if (auto status = authorize(context, "Withdraw"); !status.ok()) {
    return status;
  }
  if (request->gateway_id().empty() || request->lease_key().size() > k_max_lease_key) {
    return reject(
        rejection::invalid_argument,
        {grpc::StatusCode::INVALID_ARGUMENT, "gateway_id required, lease_key at most 128 bytes"});
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
      v1::WatchEvent event;
      *event.mutable_removed() = std::move(it->second.info);
      leases_.erase(it);
      publish_locked(event);
      removed = true;
    }
  }
  if (removed) {
    leases_withdrawn_.inc();
    spdlog::info("gateway {} withdrawn", request->gateway_id());
  }
  return grpc::Status::OK;
}

grpc::Status register_service::List(grpc::ServerContext* context,
                                    const v1::ListRequest* /*request*/,
                                    v1::ListResponse* response) {
  if (auto status = authorize(context, "List"); !status.ok()) {
    return status;
  }
  std::lock_guard lock(mutex_);
  for (const auto& [id, entry] : leases_) {
    *response->add_gateways() = entry.info;
  }
  return grpc::Status::OK;
}

grpc::Status register_service::Watch(grpc::ServerContext* context, const v1::WatchRequest* request,
                                     grpc::ServerWriter<v1::WatchEvent>* writer) {
  if (auto status = authorize(context, "Watch"); !status.ok()) {
    return status;
  }
  const auto label = watcher_label(context, request->watcher_name());
  auto queue = std::make_shared<watch_queue>();
  v1::WatchEvent first;
  {
    // Snapshot and subscription under one lock: no change can fall between them.
    std::lock_guard lock(mutex_);
    if (shutting_down_) {
      return reject(rejection::shutting_down,
                    {grpc::StatusCode::UNAVAILABLE, "register shutting down"});
    }
    auto* snapshot = first.mutable_snapshot();
    for (const auto& [id, entry] : leases_) {
      *snapshot->add_gateways() = entry.info;
    }
    watchers_.insert(queue);
  }
  spdlog::info("watcher {} connected", label);

  grpc::Status result = grpc::Status::OK;
  bool open = writer->Write(first);
  std::vector<v1::WatchEvent> batch;
  while (open) {
    {
      std::unique_lock lock(mutex_);
      changed_.wait_for(lock, k_watch_poll, [&] {
        return shutting_down_ || queue->overflowed || !queue->events.empty();
      });
      if (shutting_down_) {
        result = {grpc::StatusCode::UNAVAILABLE, "register shutting down"};
        break;
      }
      if (queue->overflowed) {
        result = {grpc::StatusCode::RESOURCE_EXHAUSTED, "watcher fell too far behind"};
        break;
      }
      batch.swap(queue->events);
    }
    if (context->IsCancelled()) {
      break;
    }
    for (std::size_t i = 0; i < batch.size() && open; ++i) {
      grpc::WriteOptions options;
      if (i + 1 < batch.size()) {
        options.set_buffer_hint();
      }
      open = writer->Write(batch[i], options);
    }
    batch.clear();
  }
  {
    std::lock_guard lock(mutex_);
    watchers_.erase(queue);
  }
  if (result.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
    watch_overflows_.inc();
    spdlog::warn("watcher {} fell {} events behind; stream ended, it will resync", label,
                 config_.max_watch_backlog);
  } else {
    spdlog::info("watcher {} disconnected", label);
  }
  return result;
}

void register_service::sweep() {
  std::unique_lock lock(mutex_);
  while (!shutting_down_) {
    const auto now = clock::now();
    auto next = now + k_sweep_poll;
    std::vector<std::string> lapsed;
    for (auto it = leases_.begin(); it != leases_.end();) {
      if (it->second.expires <= now) {
        v1::WatchEvent event;
        *event.mutable_removed() = std::move(it->second.info);
        lapsed.push_back(it->first);
        it = leases_.erase(it);
        publish_locked(event);
      } else {
        next = std::min(next, it->second.expires);
        ++it;
      }
    }
    if (!lapsed.empty()) {
      leases_expired_.inc(lapsed.size());
      lock.unlock();
      for (const auto& id : lapsed) {
        spdlog::warn("gateway {} dropped: lease lapsed", id);
      }
      lock.lock();
      continue;
    }
    sweeper_wake_.wait_until(lock, next, [&] { return shutting_down_; });
  }
}

}  // namespace gwx::registry
