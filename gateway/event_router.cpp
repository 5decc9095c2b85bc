#include "gateway/event_router.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace gwx::gateway {
namespace {

// RFC 6455 registry: the server is overloaded or unable to serve now; retry later.
constexpr std::uint16_t k_close_try_again_later = 1013;
constexpr const char* k_no_worker = "no worker available: client events are queued";
constexpr const char* k_quarantined = "event quarantined";

}  // namespace

event_router::event_router(client_directory& clients, unsigned loop, delivery_config config,
                           const event_metrics& metrics, const std::string& gateway_address)
    : clients_(clients),
      gateway_address_(gateway_address),
      loop_(loop),
      config_(config),
      metrics_(metrics) {}

std::uint64_t event_router::next_event_id(client_record& c) {
  const std::uint64_t seq = ++c.delivery().next_seq_;
  return ((c.connection() >> 8) << 24) | (seq << 8) | loop_;
}

worker_port* event_router::pick(client_record& c, bool& wait) {
  wait = false;
  auto& d = c.delivery();
  if (d.worker_id_ != 0) {
    for (const auto& w : workers_) {
      if (w.id == d.worker_id_) {
        if (!w.draining) {
          return w.port;
        }
        if (!d.unacked_.empty()) {
          // Its events must be handled before the next one goes elsewhere: keep the order.
          wait = true;
          return nullptr;
        }
        break;
      }
    }
  }
  for (std::size_t i = 0; i < workers_.size(); ++i) {
    const auto& w = workers_[next_worker_++ % workers_.size()];
    if (!w.draining) {
      d.worker_id_ = w.id;
      d.info_sent_ = false;  // a new link knows nothing of the client
      return w.port;
    }
  }
  return nullptr;
}

bool event_router::has_route(client_record& c, clock::time_point now) {
  bool wait = false;
  if (pick(c, wait) == nullptr && !wait) {
    warn_queue(k_no_worker, now);
    return false;
  }
  return true;
}

bool event_router::dispatch(client_record& c, event_ptr event, clock::time_point now) {
  if (!c.delivery().held_.empty()) {
    hold(c, std::move(event), now);
    return false;
  }
  bool wait = false;
  auto* w = pick(c, wait);
  if (w == nullptr) {
    if (!wait) {
      warn_queue(k_no_worker, now);
    }
    hold(c, std::move(event), now);
    return false;
  }
  const std::size_t bytes = event_size(event);
  if (!room_for(c, *w, bytes)) {
    hold(c, std::move(event), now);
    throttle(c);
    return false;
  }
  send_to(c, *w, std::move(event), bytes, 1, now);
  return true;
}

bool event_router::room_for(const client_record& c, const worker_port& w, std::size_t bytes) const {
  if (w.backpressured()) {
    return false;
  }
  const auto& d = c.delivery();
  if (config_.at_most_once || d.unacked_.empty()) {
    return true;  // one event always fits, however large: the client cannot get stuck
  }
  return d.unacked_.size() < config_.inflight_max_events &&
         d.unacked_bytes_ + bytes <= config_.inflight_max_bytes;
}

void event_router::send_to(client_record& c, worker_port& w, event_ptr event, std::size_t bytes,
                           std::uint8_t attempts, clock::time_point now) {
  auto& d = c.delivery();
  // `w` is the client's sticky worker (pick() chose it): the info it has is tracked for it.
  if (!d.info_sent_ && !event->carries_info) {
    w.send_client_info(make_client_info(c, gateway_address_));
    d.info_sent_ = true;
  }
  if (!config_.at_most_once) {
    d.unacked_.push_back({event, now, bytes, attempts});
    d.unacked_bytes_ += bytes;
    metrics_.in_flight.inc();
  }
  w.send_event(event);
}

void event_router::throttle(client_record& c) {
  throttled_.insert(c.connection());
  auto& d = c.delivery();
  if (!d.paused_) {
    d.paused_ = true;
    c.port().pause_reading();
  }
}

void event_router::unthrottle(client_record& c) {
  throttled_.erase(c.connection());
  auto& d = c.delivery();
  if (d.paused_) {
    d.paused_ = false;
    c.port().resume_reading();
  }
}

void event_router::hold(client_record& c, event_ptr event, clock::time_point now) {
  auto& d = c.delivery();
  const std::size_t bytes = event_size(event);
  const bool over = !fits_held(c, bytes);
  if (over && !config_.queue_close_client) {
    make_room(c, bytes, now);
  }
  d.held_bytes_ += bytes;
  d.held_.push_back({std::move(event), bytes, now});
  metrics_.queued.inc();
  waiting_.insert(c.connection());
  if (over && config_.queue_close_client && !c.closed()) {
    // After holding this event, so the worker later sees it before the client's CLOSE.
    warn_queue("event queue bound reached: client closed", now);
    c.port().close_with_reason(close_cause::queue_policy, k_close_try_again_later,
                               "event queue full: no worker took its events");
  }
}

bool event_router::fits_held(const client_record& c, std::size_t bytes) const {
  const auto& d = c.delivery();
  return d.held_.size() + 1 <= config_.queue_max_events &&
         d.held_bytes_ + bytes <= config_.queue_max_bytes;
}

void event_router::make_room(client_record& c, std::size_t bytes, clock::time_point now) {
  // As many of the oldest as it takes: one large event may displace many small ones. An
  // event over the byte bound by itself is then held alone.
  auto& d = c.delivery();
  bool dropped = false;
  while (!d.held_.empty() && !fits_held(c, bytes)) {
    d.held_bytes_ -= d.held_.pop_front().bytes;
    ++dropped_;
    metrics_.queued.dec();
    metrics_.dropped_queue_bound.inc();
    dropped = true;
  }
  if (dropped) {
    warn_queue("event queue bound reached: oldest events dropped", now);
  }
}

void event_router::flush_held(client_record& c, clock::time_point now) {
  auto& d = c.delivery();
  while (!d.held_.empty()) {
    bool wait = false;
    auto* w = pick(c, wait);
    if (w == nullptr) {
      return;
    }
    if (!room_for(c, *w, d.held_.front().bytes)) {
      throttle(c);
      return;
    }
    auto item = d.held_.pop_front();
    metrics_.queued.dec();
    d.held_bytes_ -= item.bytes;
    send_to(c, *w, std::move(item.event), item.bytes, static_cast<std::uint8_t>(item.attempts + 1),
            now);
  }
  waiting_.erase(c.connection());
  unthrottle(c);
  forget_if_done(c);
}

void event_router::forget_if_done(client_record& c) {
  if (c.closed() && c.delivery().idle()) {
    waiting_.erase(c.connection());
    throttled_.erase(c.connection());
    clients_.erase(c.connection());
  }
}

void event_router::on_acks(const std::vector<std::uint64_t>& event_ids, clock::time_point now) {
  for (const auto id : event_ids) {
    auto* c = clients_.find_connection(((id >> 24) << 8) | loop_);
    if (c == nullptr) {
      continue;
    }
    auto& d = c->delivery();
    d.unacked_.erase_first([&](const sent_event& e) {
      if (event_id_of(e.event) != id) {
        return false;
      }
      d.unacked_bytes_ -= e.bytes;
      metrics_.in_flight.dec();
      metrics_.round_trip.observe(now - e.sent);
      return true;
    });
    if (!d.held_.empty()) {
      flush_held(*c, now);  // room was made (a draining worker's wait is kept by pick)
    } else if (d.unacked_.empty()) {
      forget_if_done(*c);
    }
  }
}

void event_router::quarantine(const client_record& c, const sent_event& e, clock::time_point now) {
  ++dropped_;
  metrics_.dropped_quarantined.inc();
  auto& w = queue_warnings_[k_quarantined];
  if (w.count(now)) {
    spdlog::warn(
        "loop {}: event {} of client {} quarantined (dropped): its worker vanished before "
        "acknowledging it {} times ({} event(s) quarantined so far)",
        loop_, event_id_of(e.event), c.id(), e.attempts, w.total());
  }
}

void event_router::warn_queue(const char* what, clock::time_point now) {
  auto& w = queue_warnings_[what];
  if (w.count(now)) {
    spdlog::warn("loop {}: {} ({} such event(s) so far; {} dropped by the queue policy)", loop_,
                 what, w.total(), dropped_);
  }
}

std::size_t event_router::pending() const {
  std::size_t n = 0;
  clients_.for_each([&n](const client_record& c) {
    n += c.delivery().held_count() + c.delivery().unacked_count();
  });
  return n;
}

event_counts event_router::counts() const {
  event_counts out;
  clients_.for_each([&out](const client_record& c) {
    out.queued += c.delivery().held_count();
    out.in_flight += c.delivery().unacked_count();
    if (const auto w = c.delivery().worker_id(); w != 0) {
      auto& load = out.by_worker[w];
      load.clients += c.closed() ? 0 : 1;
      load.in_flight += c.delivery().unacked_count();
    }
  });
  out.redelivered = redelivered_;
  out.dropped = dropped_;
  return out;
}

void event_router::sweep(clock::time_point now) {
  std::vector<client_record*> expired;
  for (const auto conn : waiting_) {
    auto* c = clients_.find_connection(conn);
    if (c != nullptr && !c->delivery().held_.empty() &&
        now - c->delivery().held_.front().since > config_.queue_max_age) {
      expired.push_back(c);
    }
  }
  for (auto* c : expired) {
    if (config_.queue_close_client && !c->closed()) {
      warn_queue("queued events too old: client closed", now);
      c->port().close_with_reason(close_cause::queue_policy, k_close_try_again_later,
                                  "queued events waited too long for a worker");
      continue;
    }
    auto& d = c->delivery();
    std::size_t old = 0;
    // Count from the front: the queue is in arrival order.
    auto all = d.held_.take_all();
    d.held_bytes_ = 0;
    for (auto& item : all) {
      if (now - item.since > config_.queue_max_age) {
        ++old;
        ++dropped_;
        metrics_.queued.dec();
        metrics_.dropped_queue_age.inc();
        continue;
      }
      d.held_bytes_ += item.bytes;
      d.held_.push_back(std::move(item));
    }
    if (old > 0) {
      warn_queue("queued events older than the age bound dropped", now);
    }
    if (d.held_.empty()) {
      waiting_.erase(c->connection());
      unthrottle(*c);
      forget_if_done(*c);
    }
  }
  // Held back by a link's backpressure (or a bound): try again, the link may have drained.
  std::vector<client_record*> throttled;
  for (const auto conn : throttled_) {
    if (auto* c = clients_.find_connection(conn)) {
      throttled.push_back(c);
    }
  }
  for (auto* c : throttled) {
    flush_held(*c, now);
  }
}

bool event_router::linked(std::uint64_t worker_id) const {
  return std::any_of(workers_.begin(), workers_.end(),
                     [worker_id](const worker_slot& w) { return w.id == worker_id; });
}

bool event_router::set_workers(std::uint64_t version,
                               std::vector<std::shared_ptr<worker_port>> workers,
                               clock::time_point now) {
  if (version <= workers_version_) {
    return false;
  }
  workers_version_ = version;
  ports_ = std::move(workers);
  workers_.clear();
  for (const auto& p : ports_) {
    workers_.push_back({p->id(), p->draining(), p.get()});
  }
  next_worker_ = 0;
  // Collect first: flushing may close or forget clients.
  std::vector<client_record*> affected;
  clients_.for_each([&](client_record& c) {
    const auto& d = c.delivery();
    if ((d.worker_id_ != 0 && !linked(d.worker_id_)) || !d.held_.empty() ||
        (!d.unacked_.empty() && d.worker_id_ == 0)) {
      affected.push_back(&c);
    }
  });
  for (auto* c : affected) {
    auto& d = c->delivery();
    if (d.worker_id_ != 0 && !linked(d.worker_id_)) {
      // Its worker went away: what it did not acknowledge goes first, flagged, in order.
      auto lost = d.unacked_.take_all();
      if (!lost.empty()) {
        auto rest = d.held_.take_all();
        d.unacked_bytes_ = 0;
        metrics_.in_flight.dec(static_cast<std::int64_t>(lost.size()));
        for (auto& e : lost) {
          if (e.attempts >= config_.max_attempts) {
            quarantine(*c, e, now);
            continue;
          }
          auto copy = redelivered_copy(e.event);
          ++redelivered_;
          metrics_.redelivered.inc();
          metrics_.queued.inc();
          const std::size_t bytes = event_size(copy);
          d.held_bytes_ += bytes;
          d.held_.push_back({std::move(copy), bytes, now, e.attempts});
        }
        for (auto& item : rest) {
          d.held_.push_back(std::move(item));
        }
        waiting_.insert(c->connection());
      }
      d.worker_id_ = 0;
      d.info_sent_ = false;
    }
    if (!d.held_.empty()) {
      flush_held(*c, now);
    } else {
      // Everything it had was quarantined (or nothing was pending).
      waiting_.erase(c->connection());
      unthrottle(*c);
      forget_if_done(*c);
    }
  }
  return true;
}

}  // namespace gwx::gateway
