#include "worker/sdk/worker.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "common/bus/bus_publisher.hpp"
#include "common/cluster/bus_transport.hpp"
#include "common/cluster/cluster_core.hpp"
#include "worker/sdk/handler_pool.hpp"

namespace gwx {
namespace {

using clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// The least a flush is given, even when a drain has used up its time: the last pushes still
// deserve a round-trip.
constexpr milliseconds k_min_flush{100};

milliseconds left_until(clock::time_point deadline) {
  return std::max(k_min_flush, std::chrono::duration_cast<milliseconds>(deadline - clock::now()));
}

std::string joined(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) {
    out += (out.empty() ? "" : ", ") + s;
  }
  return out;
}

}  // namespace

worker::worker(worker_options options, std::unique_ptr<handler> app)
    : app_(std::move(app)),
      drain_timeout_(options.drain_timeout),
      drain_request_hook_(std::move(options.on_drain_request)) {
  if (options.cluster.name.empty()) {
    options.cluster.name = "gwx-worker";
  }
  const auto push_bus = options.cluster.push_bus;
  core_ = std::make_shared<cluster::cluster_core>(
      cluster::make_core_options(std::move(options.cluster), link::v2::PEER_ROLE_WORKER));
  if (push_bus.empty()) {
    api_ = std::make_unique<gateway_api>(core_);
  } else {
    // The handlers' writes go to the bus; session write-backs and acks stay on the links
    // (they are ordered with the client's events).
    bus_ = std::make_shared<bus::bus_publisher>(bus::parse_bus_url(push_bus));
    api_ = std::make_unique<gateway_api>(std::make_shared<cluster::bus_transport>(core_, bus_));
  }
  pool_ = std::make_unique<sdk::handler_pool>(options.threads, *app_, *api_, *core_,
                                              options.max_queued_bytes, options.handler_stall_warn);
  core_->set_event_handler(
      [pool = pool_.get()](const cluster::link_ref& link, link::v2::ClientEvent& event,
                           std::string_view payload, const link_clients::client_view* client) {
        pool->dispatch(link, event, payload, client);
      });
  core_->set_link_lost_handler(
      [pool = pool_.get()](const cluster::link_ref& link, bool gateway_redelivers) {
        pool->link_lost(link, gateway_redelivers);
      });
  core_->set_link_change_handler(std::move(options.on_link_change));
  core_->set_drain_request_handler([this](const std::string& address, const std::string& reason) {
    on_drain_request(address, reason);
  });
}

worker::~worker() {
  stop();
}

void worker::start() {
  std::lock_guard lock(lifecycle_mutex_);
  if (started_) {
    return;
  }
  started_ = true;
  core_->start();
  if (bus_) {
    bus_->start();
  }
  // Events that arrive meanwhile wait in the pool until on_worker_start has returned.
  app_->on_worker_start(*api_);
  pool_->start();
}

void worker::stop() {
  std::thread self_drain;
  {
    std::lock_guard lock(self_drain_mutex_);
    self_drain_closed_ = true;
    self_drain = std::move(self_drain_);
  }
  if (self_drain.joinable()) {
    self_drain.join();
  }
  std::lock_guard lock(lifecycle_mutex_);
  if (!started_ || stopped_) {
    return;
  }
  finish(clock::now() + core_->default_timeout());
}

drain_report worker::drain(milliseconds timeout, const std::string& reason) {
  std::lock_guard lock(lifecycle_mutex_);
  drain_report report;
  if (!started_ || stopped_) {
    report.complete = !started_;
    return report;
  }
  draining_ = true;
  const auto start = clock::now();
  const auto deadline = start + (timeout.count() > 0 ? timeout : drain_timeout_);
  const auto handled_before = std::min(pool_->handled(), handled_at_request_.load());
  std::size_t linked = 0;
  for (const auto& g : core_->gateways()) {
    linked += g.linked ? 1 : 0;
  }
  spdlog::info("draining ({}): asking {} linked gateway(s) to route no new events here", reason,
               linked);
  core_->start_drain(reason);
  bool done = false;
  bool in_time = true;
  std::vector<std::string> not_flushed;
  while (!done && in_time) {
    // (1) Every gateway promised to send nothing more, so (2) the pool has all there is to
    // run; (3) once it ran it and handed over the acks and commands, a round-trip to every
    // gateway proves they processed them. A link that came up meanwhile restarts the round.
    in_time = core_->wait_drain_answered(deadline);
    const auto generation = core_->drain_generation();
    in_time = in_time && pool_->wait_idle(deadline);
    if (in_time) {
      not_flushed = core_->flush(left_until(deadline));
      in_time = not_flushed.empty();
    }
    done = in_time && core_->drain_generation() == generation &&
           core_->drain_unanswered().empty() && pool_->unfinished() == 0;
  }
  report.unanswered_gateways = core_->drain_unanswered();
  report.unanswered_gateways.insert(report.unanswered_gateways.end(), not_flushed.begin(),
                                    not_flushed.end());
  report.unfinished_events = pool_->unfinished();
  if (!done) {
    spdlog::warn(
        "drain incomplete after {} ms: {} event(s) not handled yet; gateways that did not "
        "answer or confirm: {}",
        std::chrono::duration_cast<milliseconds>(clock::now() - start).count(),
        report.unfinished_events,
        report.unanswered_gateways.empty() ? "none" : joined(report.unanswered_gateways));
  }
  const auto last_unflushed = finish(deadline);
  report.complete = done && last_unflushed.empty();
  report.events_handled = pool_->handled() - handled_before;
  report.elapsed = std::chrono::duration_cast<milliseconds>(clock::now() - start);
  spdlog::info("drained in {} ms: {} event(s) handled during the drain{}", report.elapsed.count(),
               report.events_handled, report.complete ? "" : " (incomplete, see above)");
  return report;
}

std::vector<std::string> worker::finish(clock::time_point deadline) {
  stopped_ = true;
  pool_->stop();
  try {
    app_->on_worker_stop(*api_);
  } catch (const std::exception& e) {
    spdlog::error("on_worker_stop failed: {}", e.what());
  } catch (...) {
    spdlog::error("on_worker_stop failed: an exception that is not a std::exception");
  }
  // What the handler and on_worker_stop sent must be processed before the links close.
  if (bus_) {
    const auto before = clock::now();
    bus_->stop(std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline > before ? deadline - before : clock::duration::zero()));
  }
  auto missing = core_->flush(left_until(deadline));
  if (!missing.empty()) {
    spdlog::warn("last pushes not confirmed by gateway(s): {}", joined(missing));
  }
  core_->stop();
  return missing;
}

void worker::on_drain_request(const std::string& gateway_address, const std::string& reason) {
  if (draining_) {
    return;
  }
  // On the link's thread, before it reads what the gateway sent after its request.
  auto none = k_no_request;
  handled_at_request_.compare_exchange_strong(none, pool_->handled());
  if (drain_request_hook_) {
    drain_request_hook_(gateway_address, reason);
    return;
  }
  std::lock_guard lock(self_drain_mutex_);
  if (self_drain_closed_ || self_drain_.joinable()) {
    return;
  }
  self_drain_ = std::thread([this, why = "asked by gateway " + gateway_address + ": " + reason] {
    drain(milliseconds::zero(), why);
  });
}

void worker::set_gateways(std::vector<registry::gateway_entry> gateways) {
  core_->set_gateways(std::move(gateways));
}

bool worker::wait_ready(std::chrono::milliseconds timeout) {
  return core_->wait_ready(timeout);
}

std::vector<gateway_status> worker::gateways() const {
  return core_->gateways();
}

std::uint64_t worker::pushes_dropped() const {
  return core_->pushes_dropped();
}

std::size_t worker::stalled_handlers() const {
  return pool_->stalled_handlers();
}

std::uint64_t worker::events_skipped() const {
  return pool_->skipped();
}

bool worker::reload_tls() {
  return core_->reload_link_tls();
}

}  // namespace gwx
