#include "worker/sdk/worker.hpp"

#include <spdlog/spdlog.h>

#include "common/cluster/cluster_core.hpp"
#include "worker/sdk/handler_pool.hpp"

namespace gwx {

worker::worker(worker_options options, std::unique_ptr<handler> app) : app_(std::move(app)) {
  if (options.cluster.name.empty()) {
    options.cluster.name = "gwx-worker";
  }
  core_ = std::make_shared<cluster::cluster_core>(
      cluster::make_core_options(std::move(options.cluster), link::v1::PEER_ROLE_WORKER));
  api_ = std::make_unique<gateway_api>(core_);
  pool_ = std::make_unique<sdk::handler_pool>(options.threads, *app_, *api_, *core_);
  core_->set_event_handler(
      [pool = pool_.get()](const cluster::link_ref& link, link::v1::ClientEvent& event) {
        pool->dispatch(link, event);
      });
  core_->set_link_change_handler(std::move(options.on_link_change));
}

worker::~worker() {
  stop();
}

void worker::start() {
  if (started_) {
    return;
  }
  started_ = true;
  core_->start();
  // Events that arrive meanwhile wait in the pool until on_worker_start has returned.
  app_->on_worker_start(*api_);
  pool_->start();
}

void worker::stop() {
  if (!started_ || stopped_) {
    return;
  }
  stopped_ = true;
  pool_->stop();
  try {
    app_->on_worker_stop(*api_);
  } catch (const std::exception& e) {
    spdlog::error("on_worker_stop failed: {}", e.what());
  }
  core_->stop();
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

}  // namespace gwx
