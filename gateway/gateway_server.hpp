#pragma once

#include <asio.hpp>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/logging.hpp"
#include "common/metrics/callback.hpp"
#include "common/net/endpoint.hpp"
#include "common/net/io_context_pool.hpp"
#include "common/net/tls_context.hpp"
#include "common/net/tls_files.hpp"
#include "gateway/bus_subscriber.hpp"
#include "gateway/gateway_metrics.hpp"
#include "gateway/listener_config.hpp"
#include "gateway/loop_mailbox.hpp"
#include "gateway/shard.hpp"

namespace gwx::registry {
class lease_keeper;
}
namespace gwx::metrics {
class registry;
}

namespace gwx::gateway {

/// Everything gwx-gateway is configured with.
struct gateway_config {
  std::vector<host_port> registers;
  std::string register_token;
  /// TLS towards the registers (empty: plaintext).
  tls_files register_tls;
  /// TLS on the internal listener (all three files: every link must be TLS with a certificate
  /// signed by `ca`; empty: plain links).
  tls_files link_tls;
  std::vector<listener_config> listeners;
  host_port internal{"127.0.0.1", 7800};
  std::string advertise;  ///< host:port in client_ids and the register; default: bound internal
  std::string secret;
  std::string name;
  std::size_t threads = 1;
  /// Hand each loop's client writes of one turn to the kernel in one io_uring call, and its
  /// client reads of one turn in another (falls back to one sendmsg() or recvfrom() each where
  /// io_uring is unavailable); false: always one system call each.
  bool io_uring = true;
  std::chrono::milliseconds lease_ttl{6000};
  std::chrono::milliseconds link_keepalive_interval{1000};
  std::chrono::milliseconds link_keepalive_timeout{5000};
  std::chrono::milliseconds decision_timeout{5000};
  std::size_t max_link_frame = 64 << 20;
  /// at-least-once: keep each event until the worker acknowledges it and hand it to another
  /// worker if that one goes away. at-most-once: forget an event once written to a link.
  bool at_most_once = false;
  /// Per-client bounds of events queued while no worker can take them.
  std::size_t queue_max_events = 1000;
  std::size_t queue_max_bytes = 1 << 20;
  std::chrono::milliseconds queue_max_age{60000};
  /// Per-client bounds of events sent and not yet acknowledged (past one: held, reading paused).
  std::size_t inflight_max_events = 64;
  std::size_t inflight_max_bytes = 1 << 20;
  /// Bytes of unfinished client messages (read buffers, WebSocket fragments) all clients may
  /// hold together; each loop gets an equal share. Past it, the client that grows is closed.
  std::size_t unfinished_max_bytes = std::size_t{1} << 30;
  /// Deliveries of an event to workers that all vanished before it is quarantined.
  unsigned event_max_attempts = 3;
  /// Shutdown: what TCP clients are told (WebSocket clients get close 1001) and how long the
  /// gateway waits for clients to go and workers to acknowledge their last events.
  std::string goodbye;
  std::chrono::milliseconds shutdown_timeout{5000};
  /// Where the gateway registers its metrics; null: none (handles stay detached).
  metrics::registry* metrics = nullptr;
  /// What to do past a bound: drop the oldest events (false) or close the client (true).
  bool queue_close_client = false;
  /// The push bus to subscribe to; none when unset. Its client_key and gateway_id are filled
  /// in by the server.
  std::optional<bus_config> bus;
  /// Bytes of bus commands handed to the loops and not run yet; past it bus messages are
  /// dropped (counted): the loops are behind.
  std::size_t bus_max_pending = 64 << 20;
};

/// The gateway: a pool of event loops (one shard each), public listeners that spread accepted
/// clients over the shards, the internal listener for worker links, and the register lease.
/// start()/stop() from the owning thread; the rest is used by shards and links.
class gateway_server {
 public:
  explicit gateway_server(gateway_config config);
  ~gateway_server();

  /// Binds every listener (throws std::system_error with the address on failure), starts the
  /// loops and the register lease. Returns once serving.
  void start();
  /// Graceful stop: stops accepting, withdraws from the registers, tells every client goodbye,
  /// waits (bounded by shutdown_timeout) for sockets to close and workers to acknowledge what
  /// they were sent, then stops the loops. Idempotent.
  void stop();

  /// Reads the certificates of every TLS listener, of the internal links (--link-tls-*) and of
  /// the calls to the registers (--register-tls-*) again (SIGHUP): connections and links made
  /// afterwards get the new ones, live ones keep theirs. Whatever does not load keeps its
  /// current certificates and logs one line. Returns how many failed. Any thread.
  std::size_t reload_tls();

  /// Listener URLs with their real ports, internal address last as internal://HOST:PORT.
  std::vector<std::string> bound_urls() const;

  const gateway_config& config() const { return config_; }
  std::uint64_t epoch() const { return epoch_; }
  const std::string& gateway_id() const { return gateway_id_; }
  /// host:port every client_id of this process names.
  const std::string& advertised() const { return advertised_; }
  /// IP and port parts of advertised(), for building client_ids.
  const std::string& advertised_ip() const { return advertised_ip_; }
  std::uint16_t advertised_port() const { return advertised_port_; }

  /// The shard holding a client_id of this gateway process; nullopt for other gateways,
  /// earlier runs of this one, or garbage.
  std::optional<unsigned> shard_of(const std::string& client_id) const;

  /// Gateway-wide event metric handles (any thread).
  const event_metrics& events() const { return events_; }
  /// A new SSL object for an accepted link, or null when links are plain.
  net::ssl_ptr new_link_ssl() const;
  /// Metric handles for a new worker link named `worker` (detached without --metrics).
  metrics::counter routed_counter(const std::string& worker);

  std::size_t shard_count() const { return shards_.size(); }
  shard& shard_at(std::size_t i) { return *shards_[i]; }
  /// Batched hand-over of work from loop `from` to loop `to` (see loop_mailbox).
  loop_mailbox& mailbox(unsigned from, unsigned to) {
    return *mailboxes_[from * shards_.size() + to];
  }

  /// Called on a link's loop when it authenticated as a worker / when it went away.
  void worker_up(const std::shared_ptr<worker_link>& link);
  /// Most internal connections that have not proven the secret yet; more are closed at once.
  static constexpr std::size_t k_max_unauthenticated_links = 64;
  /// A link was refused (bad proof, no hello, too many pending, a TLS mismatch): logged once
  /// per peer name (or host, before the peer named itself) and reason per interval.
  void link_refused(const std::string& remote, const std::string& name, const std::string& reason);
  /// A link accepted on the internal port authenticated or went away before it did.
  void link_handshake_over();
  void worker_down(std::uint64_t link_id);
  /// Called on a link's loop when it closed (whatever its state).
  void link_closed(std::uint64_t link_id);
  /// Called on a link's loop when its worker asked to drain; `done` runs on that loop once
  /// every shard routes nothing new to it.
  void worker_draining(const std::shared_ptr<worker_link>& link, std::function<void()> done);
  /// Asks the workers linked under `name` to drain; false when none is.
  bool request_drain(const std::string& name);
  /// Workers that announced a drain (any thread).
  std::vector<std::string> draining_names() const;
  /// Names of the connected workers (any thread).
  std::vector<std::string> worker_names() const;
  /// The connected workers (any thread).
  std::vector<worker_ref> worker_refs() const;
  /// The push bus subscription; null without --bus.
  bus_subscriber* bus() { return bus_.get(); }
  /// Fills the bus part of a STATS answer (any thread).
  void fill_bus_stats(link::v2::GatewayStats& stats) const;
  /// A client of `l` is gone: its places in the listener's and the gateway's counts are free
  /// (any thread).
  void client_closed(const listener_config& l);

 private:
  struct listener;
  void accept_next(listener& l);
  void accept_internal();
  /// Posts a copy of workers_ (the next version) to every shard; `applied`, if set, runs on
  /// each shard's loop once that shard dealt with the copy. Call with workers_mutex_ held.
  void publish_workers(const std::function<void()>& applied = {});
  void attach_metrics(metrics::registry& reg);
  void attach_bus_metrics(metrics::registry& reg);
  void warn_accept_error(const std::string& where, std::error_code ec);
  /// Hands one bus command to the loop(s) it concerns; false when the hand-off is full.
  bool dispatch_bus(bus::bus_command&& c);

  gateway_config config_;
  std::uint64_t epoch_;
  std::string gateway_id_;
  std::string advertised_;
  std::string advertised_ip_;
  std::uint16_t advertised_port_ = 0;
  /// What this process's client_ids start with (address and epoch).
  std::string id_prefix_;
  std::vector<std::shared_ptr<loop_mailbox>> mailboxes_;
  /// From the bus thread to each loop.
  std::vector<std::shared_ptr<loop_mailbox>> bus_mailboxes_;
  /// Bytes of bus commands in bus_mailboxes_ (shared: a task may outlive the server's members).
  std::shared_ptr<std::atomic<std::size_t>> bus_pending_ =
      std::make_shared<std::atomic<std::size_t>>(0);
  io_context_pool pool_;
  std::vector<std::unique_ptr<shard>> shards_;
  std::vector<std::unique_ptr<listener>> listeners_;
  /// Refused connections still being told so (see refused_connection).
  std::shared_ptr<std::atomic<std::size_t>> refusing_ =
      std::make_shared<std::atomic<std::size_t>>(0);
  std::unique_ptr<asio::ip::tcp::acceptor> internal_;
  std::shared_ptr<net::tls_context> link_tls_;
  std::string internal_bound_;
  std::unique_ptr<registry::lease_keeper> lease_;
  std::atomic<std::uint64_t> next_link_id_{1};
  std::atomic<std::size_t> next_shard_{0};
  std::atomic<bool> stopped_{false};
  bool running_ = false;  ///< the loops were started (start() got that far)
  std::atomic<std::size_t> unauthenticated_links_{0};
  std::atomic<std::size_t> clients_{0};  ///< open clients, every listener
  std::size_t max_clients_ = 0;
  log_throttle clients_full_log_;  ///< accept handlers (all on loop 0)
  /// Links refused, and the interval in which each refused name is logged once.
  log_throttle links_refused_;           ///< under accept_log_mutex_
  std::set<std::string> refused_names_;  ///< under accept_log_mutex_
  std::mutex accept_log_mutex_;
  log_throttle accept_errors_;  ///< under accept_log_mutex_

  mutable std::mutex workers_mutex_;
  std::vector<worker_ref> workers_;
  /// Counts the copies of workers_ posted to the shards (under workers_mutex_): a shard applies
  /// only a newer copy than its last, as posts can overtake one another.
  std::uint64_t workers_version_ = 0;
  /// Every internal link accepted and not closed yet: stop() detaches those still open.
  std::mutex links_mutex_;
  std::unordered_map<std::uint64_t, std::weak_ptr<worker_link>> links_;
  event_metrics events_;
  std::unique_ptr<bus_subscriber> bus_;
  // Last: unregistered first, before what their callbacks read goes away.
  std::vector<metrics::callback_registration> metric_callbacks_;
};

}  // namespace gwx::gateway
