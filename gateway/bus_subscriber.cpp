#include "gateway/bus_subscriber.hpp"

#include <spdlog/spdlog.h>

#include "gateway/bus_backends.hpp"

namespace gwx::gateway {

std::unique_ptr<bus_subscriber> bus_subscriber::make(bus_config config, dispatch_fn dispatch) {
  if (config.url.kind == bus::bus_kind::redis) {
    return make_redis_subscriber(std::move(config), std::move(dispatch));
  }
  return make_amqp_subscriber(std::move(config), std::move(dispatch));
}

bus_subscriber::bus_subscriber(bus_config config, dispatch_fn dispatch)
    : config_(std::move(config)), dispatch_(std::move(dispatch)) {}

bus_subscriber::~bus_subscriber() {
  // Derived classes stop in their own destructor (run() uses their members).
}

void bus_subscriber::start() {
  if (started_) {
    return;
  }
  started_ = true;
  spdlog::info("bus: {} ({})", config_.url.redacted(), config_.url.mode_name());
  thread_ = std::thread([this] { run(); });
}

void bus_subscriber::stop() {
  if (stopping_.exchange(true, std::memory_order_acq_rel)) {
    return;
  }
  wake();
  if (thread_.joinable()) {
    thread_.join();
  }
  set_connected(false);
}

void bus_subscriber::hold(const std::string& key) {
  if (!routed()) {
    return;
  }
  {
    std::lock_guard lock(keys_mutex_);
    if (holders_[key]++ != 0) {
      return;
    }
    dirty_.insert(key);
  }
  wake();
}

void bus_subscriber::release(const std::string& key) {
  if (!routed()) {
    return;
  }
  {
    std::lock_guard lock(keys_mutex_);
    const auto it = holders_.find(key);
    if (it == holders_.end() || --it->second != 0) {
      return;
    }
    holders_.erase(it);
    dirty_.insert(key);
  }
  wake();
}

std::vector<bus_subscriber::binding_change> bus_subscriber::take_binding_changes() {
  std::vector<binding_change> out;
  std::lock_guard lock(keys_mutex_);
  out.reserve(dirty_.size());
  for (const auto& key : dirty_) {
    out.push_back({key, holders_.count(key) != 0});
  }
  dirty_.clear();
  return out;
}

std::vector<std::string> bus_subscriber::desired_keys() {
  std::vector<std::string> out{"all", config_.client_key};
  std::lock_guard lock(keys_mutex_);
  out.reserve(holders_.size() + 2);
  for (const auto& [key, loops] : holders_) {
    out.push_back(key);
  }
  dirty_.clear();
  return out;
}

void bus_subscriber::on_message(std::string_view payload) {
  counters_.received.fetch_add(1, std::memory_order_relaxed);
  auto parsed = bus::parse_bus_message(payload, config_.max_message);
  if (parsed.error != bus::bus_error::none) {
    reject(parsed.error, parsed.detail);
    return;
  }
  bool dropped = false;
  for (auto& c : parsed.commands) {
    dropped = !dispatch_(std::move(c)) || dropped;
  }
  if (dropped) {
    counters_.dropped.fetch_add(1, std::memory_order_relaxed);
    warn("the gateway's loops are behind: bus messages dropped (at-most-once)");
  } else {
    counters_.applied.fetch_add(1, std::memory_order_relaxed);
  }
}

void bus_subscriber::reject(bus::bus_error error, const std::string& detail) {
  counters_.rejected.fetch_add(1, std::memory_order_relaxed);
  counters_.rejected_by[static_cast<std::size_t>(error)].fetch_add(1, std::memory_order_relaxed);
  // Once per interval, with how many went unlogged: a flood of garbage costs a line, not a disk.
  const auto now = std::chrono::steady_clock::now();
  std::lock_guard lock(log_mutex_);
  if (!reject_log_.count(now)) {
    return;
  }
  const auto unlogged = reject_log_.take_pending() - 1;  // those before this one
  spdlog::warn(
      "bus: message refused ({}): {}{}", bus::bus_error_name(error), detail,
      unlogged == 0 ? std::string() : " (" + std::to_string(unlogged) + " more refused before it)");
}

void bus_subscriber::warn(const std::string& what) {
  const auto now = std::chrono::steady_clock::now();
  std::lock_guard lock(log_mutex_);
  if (!warn_log_.count(now)) {
    return;
  }
  spdlog::warn("bus {}: {}", config_.url.redacted(), what);
}

void bus_subscriber::set_connected(bool up, bool quiet) {
  if (counters_.connected.exchange(up) == up) {
    return;
  }
  if (up) {
    counters_.connects.fetch_add(1, std::memory_order_relaxed);
    if (!quiet) {
      spdlog::info("bus {}: subscribed", config_.url.redacted());
    }
  } else if (!stopping() && !quiet) {
    spdlog::warn("bus {}: connection lost; clients keep being served, reconnecting",
                 config_.url.redacted());
  }
}

}  // namespace gwx::gateway
