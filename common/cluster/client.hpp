#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/cluster/cluster_options.hpp"
#include "common/cluster/gateway_api.hpp"

namespace gwx {

namespace cluster {
class cluster_core;
}
namespace bus {
class bus_publisher;
}

/// How a gwx::Client finds and joins the cluster (default name "gwx-client").
using client_options = cluster_options;

/// A push client for processes outside the cluster (a web backend, a cron job): links to every
/// gateway the registers list, as a PEER_ROLE_CLIENT that never receives client events, and
/// offers the whole Gateway API (it is one).
///
/// Thread-safe, like gateway_api. One network thread of its own runs from start() to stop().
class Client : public gateway_api {
 public:
  /// A client configured by `options`; nothing is connected before start(). Throws
  /// std::runtime_error (one line) when TLS files in `options` cannot be used.
  explicit Client(client_options options);
  /// Shorthand: `registers` is "host:port[,host:port…]" (throws std::invalid_argument).
  Client(std::string_view registers, std::string secret, std::string token = {},
         std::string name = "gwx-client");
  ~Client();

  /// Starts watching the registers and linking to the gateways.
  void start();
  /// Waits until the registers answered and every gateway they list is linked.
  bool wait_ready(std::chrono::milliseconds timeout);
  /// Flushes pushes (bounded) and closes every link. Idempotent; also done by the destructor.
  void stop();

  /// The gateways the registers list, with their link state.
  std::vector<gateway_status> gateways() const;
  /// Pushes dropped because a gateway took them slower than they were made: its link held
  /// 64 MiB not yet sent (a stalled gateway, or a loop pushing faster than the network). The
  /// link stays up; callers on other threads are held back once 64 MiB of their writes wait
  /// for the network thread.
  std::uint64_t pushes_dropped() const;
  /// Reads the link and register TLS files again (e.g. on the process's SIGHUP): new links and
  /// connections to the registers use them, those up stay; a file that does not load keeps the
  /// previous ones (one error line, false).
  bool reload_tls();

  /// Waits until every linked gateway has processed everything sent before this call; returns
  /// the gateways that did not confirm within `timeout` (empty: all done). With a push bus:
  /// waits until the broker has everything published before the call (the gateways apply it
  /// as it arrives); returns {"bus"} when that did not happen in time.
  std::vector<std::string> flush(std::chrono::milliseconds timeout = k_default_timeout);

 private:
  Client(std::shared_ptr<cluster::cluster_core> core, std::shared_ptr<bus::bus_publisher> bus);

  std::shared_ptr<cluster::cluster_core> core_;
  /// With options.push_bus: where writes go.
  std::shared_ptr<bus::bus_publisher> bus_;
};

}  // namespace gwx
