#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/cluster/cluster_options.hpp"
#include "common/cluster/gateway_api.hpp"
#include "common/registry/gateway_watcher.hpp"
#include "worker/sdk/handler.hpp"

namespace gwx {

namespace cluster {
class cluster_core;
}
namespace sdk {
class handler_pool;
}

/// How a worker finds the gateways and runs its handler.
struct worker_options {
  /// Registers, secret, token, name (default "gwx-worker"), timeouts.
  cluster_options cluster;
  /// Handler threads.
  std::size_t threads = 1;
  /// Called on the network thread when a gateway link comes up (true) or goes down (false).
  std::function<void(const std::string& gateway_address, bool up)> on_link_change;
};

/// A worker process's runtime: one network thread linked to every gateway, `threads` handler
/// threads running `app`, and the Gateway API. What gwx-worker runs; link the SDK into your own
/// main to run a handler without it.
///
/// start() and stop() are for the owning thread; api() and gateways() may be used from any.
class worker {
 public:
  /// A worker running `app`; nothing happens before start().
  worker(worker_options options, std::unique_ptr<handler> app);
  ~worker();
  worker(const worker&) = delete;
  worker& operator=(const worker&) = delete;

  /// Starts the network thread, calls on_worker_start, then handles events as they come.
  void start();
  /// Finishes the events already received, calls on_worker_stop, flushes and closes the
  /// links. Idempotent; also done by the destructor.
  void stop();

  /// The Gateway API of this worker.
  gateway_api& api() { return *api_; }

  /// Links to exactly these gateways (when no registers are watched).
  void set_gateways(std::vector<registry::gateway_entry> gateways);
  /// Waits until every known gateway is linked (after the registers answered).
  bool wait_ready(std::chrono::milliseconds timeout);
  /// The known gateways and their link state.
  std::vector<gateway_status> gateways() const;

 private:
  std::unique_ptr<handler> app_;
  std::shared_ptr<cluster::cluster_core> core_;
  std::unique_ptr<gateway_api> api_;
  std::unique_ptr<sdk::handler_pool> pool_;
  bool started_ = false;
  bool stopped_ = false;
};

}  // namespace gwx
