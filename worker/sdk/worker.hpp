#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/cluster/cluster_options.hpp"
#include "common/cluster/gateway_api.hpp"
#include "common/registry/gateway_watcher.hpp"
#include "worker/sdk/handler.hpp"

namespace gwx {

namespace bus {
class bus_publisher;
}

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
  /// Handler threads; 0: handlers run on the network thread (no hand-off per event; a
  /// handler may make blocking Gateway API calls but must not block on anything else for
  /// long). Use N > 0 for handlers doing slow work.
  std::size_t threads = 0;
  /// Bytes of received events waiting for a handler (payloads plus 512 each): at this bound
  /// the worker stops reading the gateway links until half of it has run, so the gateways hold
  /// their clients back instead of this process growing. A link with a Gateway API query
  /// outstanding is read regardless (its answer is behind the events). At least 1.
  std::size_t max_queued_bytes = 16 * 1024 * 1024;
  /// A handler call running longer than this is reported: a warning line every 10 s at most
  /// (thread, event kind, how long) and stalled_handlers(). Zero: never.
  std::chrono::milliseconds handler_stall_warn{10000};
  /// Longest a drain takes (drain() with a zero timeout, and a drain a gateway asks for).
  std::chrono::milliseconds drain_timeout{30000};
  /// Called on the network thread when a gateway link comes up (true) or goes down (false).
  std::function<void(const std::string& gateway_address, bool up)> on_link_change;
  /// Called on the network thread when a gateway asks this worker to drain (an operator ran
  /// `gwxctl drain`); keep it short and call drain() from another thread. Unset: the worker
  /// drains itself on a thread of its own (stop() and the destructor wait for it).
  std::function<void(const std::string& gateway_address, const std::string& reason)>
      on_drain_request;
};

/// What a drain did.
struct drain_report {
  /// Every gateway answered the drain, every event received was handled and acknowledged, and
  /// every gateway confirmed it processed all of it, all within the timeout.
  bool complete = false;
  /// Events handled between the start of the drain and its end.
  std::uint64_t events_handled = 0;
  std::chrono::milliseconds elapsed{0};
  /// Gateways that did not answer the drain or confirm the flush in time.
  std::vector<std::string> unanswered_gateways;
  /// Events still queued or running when the time ran out.
  std::size_t unfinished_events = 0;
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
  /// links, without telling the gateways first: they redeliver what arrives meanwhile to other
  /// workers. Idempotent; also done by the destructor. Use drain() to lose nothing.
  void stop();

  /// Stops without losing anything: tells every gateway to route no new events here (Drain,
  /// also on links that come up meanwhile) and waits for each to answer (DrainAck; a link that
  /// drops counts as answered), handles every event received until then, waits until every
  /// gateway has processed all commands and acknowledgements, calls on_worker_stop, flushes
  /// what it sent, then closes the links. All bounded by `timeout` (zero: the configured
  /// drain_timeout); what was left at the deadline is logged and reported. Returns at once
  /// when already stopped. Logs one line at the start and one at the end.
  drain_report drain(std::chrono::milliseconds timeout = std::chrono::milliseconds::zero(),
                     const std::string& reason = "worker stopping");

  /// The Gateway API of this worker.
  gateway_api& api() { return *api_; }

  /// Links to exactly these gateways (when no registers are watched).
  void set_gateways(std::vector<registry::gateway_entry> gateways);
  /// Waits until every known gateway is linked (after the registers answered).
  bool wait_ready(std::chrono::milliseconds timeout);
  /// The known gateways and their link state.
  std::vector<gateway_status> gateways() const;
  /// Pushes dropped because a gateway took them slower than they were made: its link held
  /// 64 MiB not yet sent (a stalled gateway, or a loop pushing faster than the network). The
  /// link stays up; callers on other threads are held back once 64 MiB of their writes wait
  /// for the network thread.
  std::uint64_t pushes_dropped() const;
  /// Handler calls running for longer than worker_options::handler_stall_warn now. Any thread.
  std::size_t stalled_handlers() const;
  /// Events not run because their link went down while they waited for a handler and their
  /// gateway redelivers them (to another worker, or to this one once relinked). Any thread.
  std::uint64_t events_skipped() const;
  /// Reads the link TLS files and the register TLS files again (gwx-worker: SIGHUP): new links
  /// and new register connections use them, those up stay; a file that does not load keeps the
  /// previous ones (one error line, false). Any thread.
  bool reload_tls();

 private:
  void on_drain_request(const std::string& gateway_address, const std::string& reason);
  /// Runs the handler's last events, on_worker_stop, a flush until `deadline`, then closes.
  std::vector<std::string> finish(std::chrono::steady_clock::time_point deadline);

  std::unique_ptr<handler> app_;
  std::chrono::milliseconds drain_timeout_;
  std::function<void(const std::string&, const std::string&)> drain_request_hook_;
  std::shared_ptr<cluster::cluster_core> core_;
  /// With cluster_options::push_bus: where the handlers' writes go.
  std::shared_ptr<bus::bus_publisher> bus_;
  std::unique_ptr<gateway_api> api_;
  std::unique_ptr<sdk::handler_pool> pool_;
  // Serialises start, drain and stop (the owner's thread and the self-drain thread).
  std::mutex lifecycle_mutex_;
  bool started_ = false;
  bool stopped_ = false;
  std::atomic<bool> draining_{false};
  // The pool's handled count when the first gateway asked for a drain (k_no_request: none
  // asked): the events that came after that request are part of the drain even when the
  // pool ran them before drain() itself began.
  static constexpr std::uint64_t k_no_request = ~std::uint64_t{0};
  std::atomic<std::uint64_t> handled_at_request_{k_no_request};
  // The thread of a drain a gateway asked for (when no on_drain_request hook is set).
  std::mutex self_drain_mutex_;
  std::thread self_drain_;
  bool self_drain_closed_ = false;
};

}  // namespace gwx
