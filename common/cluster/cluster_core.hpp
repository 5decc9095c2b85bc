#pragma once

#include <asio.hpp>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "common/cluster/cluster_options.hpp"
#include "common/cluster/gateway_link.hpp"
#include "common/cluster/transport.hpp"
#include "common/cluster/types.hpp"
#include "common/logging.hpp"
#include "common/net/endpoint.hpp"
#include "common/registry/gateway_watcher.hpp"

namespace gwx::cluster {

/// What a cluster_core needs to find and link to the gateways.
struct core_options {
  /// Registers to watch; empty: gateways are given with set_gateways() (tests).
  std::vector<host_port> registers;
  /// Register access token.
  std::string token;
  /// TLS towards the registers (empty: plaintext).
  tls_files register_tls;
  link_settings link;
  std::chrono::milliseconds query_timeout{3000};
};

/// Core options for a process of `role` configured by `options`. Loads the link TLS files when
/// set; throws net::tls_config_error (one line) when they cannot be used.
core_options make_core_options(cluster_options options, link::v2::PeerRole role);

/// One network thread with a link to every gateway the registers list: follows the watched set
/// (links gateways that appear; a gateway that leaves it is dropped, at once if it is not linked,
/// else when its link goes down — the registers are not on the data path, so a register that was
/// partitioned away and let leases lapse never cuts a working link), routes commands by
/// client_id, fans requests out to every gateway at once and gathers the replies with a timeout.
///
/// Thread-safe. Hooks and request handlers run on the network thread. Create with
/// std::make_shared; set hooks before start().
class cluster_core final : public transport {
 public:
  /// A link came up (true) or went down (false); `gateway_address` as the gateway advertises it.
  using link_change_handler = std::function<void(const std::string& gateway_address, bool up)>;
  /// A client event arrived on `link` (worker role only): its header (the payload not attached;
  /// may be moved from), its payload, and its client's info (what the event carries or what
  /// the link told before; null when the link never told: only event.client_id() is known).
  /// The views are valid during the call only.
  using event_handler =
      std::function<void(const link_ref& link, link::v2::ClientEvent& event,
                         std::string_view payload, const link_clients::client_view* client)>;
  /// A link that was up went down (called before the link change hook); `gateway_redelivers`:
  /// its gateway said it hands the events the link did not acknowledge to another worker.
  using link_lost_handler = std::function<void(const link_ref& link, bool gateway_redelivers)>;
  /// A gateway asked this process to drain (an operator's `gwxctl drain`).
  using drain_request_handler =
      std::function<void(const std::string& gateway_address, const std::string& reason)>;

  explicit cluster_core(core_options options);
  ~cluster_core() override;
  cluster_core(const cluster_core&) = delete;
  cluster_core& operator=(const cluster_core&) = delete;

  /// Sets the link change hook; before start().
  void set_link_change_handler(link_change_handler h) { on_link_change_ = std::move(h); }
  /// Sets the client event hook; before start().
  void set_event_handler(event_handler h) { on_event_ = std::move(h); }
  /// Sets the link loss hook; before start().
  void set_link_lost_handler(link_lost_handler h) { on_link_lost_ = std::move(h); }
  /// Sets the drain request hook; before start().
  void set_drain_request_handler(drain_request_handler h) { on_drain_request_ = std::move(h); }

  /// Starts the network thread and the register watch.
  void start();
  /// Flushes and closes every link (bounded), stops the watch and joins. Idempotent. Called
  /// from one of its own callbacks (on the network thread) it does all but the join, which the
  /// next stop() from another thread (or the destructor) does.
  void stop();

  /// Replaces the set of gateways to link to (when no registers are watched).
  void set_gateways(std::vector<registry::gateway_entry> gateways);

  /// Reads the link TLS files (--link-tls-cert, --link-tls-key, --link-tls-ca) and the register
  /// TLS files (--register-tls-*) again: links and connections to the registers made from now
  /// on use them, those already up keep theirs. When a file does not load, the previous ones
  /// stay and one error line is logged. False then; true otherwise (also without TLS, where
  /// there is nothing to read).
  bool reload_link_tls();

  /// Waits until the registers answered and every gateway they list is linked.
  bool wait_ready(std::chrono::milliseconds timeout);

  /// The gateways currently known, sorted by id, with their link state.
  std::vector<gateway_status> gateways() const;

  /// Queues `frame` on that exact link; dropped when it is gone (e.g. reconnected since).
  void send_on_link(const link_ref& link, link::v2::Frame frame);

  /// Announces a drain: sends Drain{reason} on every link that is up and on every link that
  /// comes up from now on, and expects a DrainAck on each. Idempotent.
  void start_drain(std::string reason);
  /// Waits until every linked gateway that was sent Drain answered DrainAck (a link that went
  /// down counts as answered: its gateway redelivers what was not acknowledged); false at the
  /// deadline. Only meaningful after start_drain().
  bool wait_drain_answered(std::chrono::steady_clock::time_point deadline);
  /// Addresses of the linked gateways whose DrainAck is still awaited.
  std::vector<std::string> drain_unanswered() const;
  /// Bumped each time Drain goes out on a link: a change means events may have come meanwhile.
  std::uint64_t drain_generation() const;
  /// Waits until every linked gateway has processed everything this process sent it before the
  /// call (a request round-trip per link: links are ordered); returns the gateways that did not
  /// confirm within `timeout` (empty: all done). Not on the network thread.
  std::vector<std::string> flush(std::chrono::milliseconds timeout);

  /// Stops (true) or resumes (false) reading every gateway link, for an owner that holds too
  /// many of their events to take more: TCP backpressure then reaches the gateways, which hold
  /// their clients back. A link with a request outstanding is read anyway (its answer comes
  /// behind the events queued before it). Links that come up later follow the last call. Any
  /// thread (applied on the network thread).
  void hold_events(bool hold);
  /// Links whose reading is paused now (network thread; for tests and stats).
  std::size_t links_paused() const;

  /// True on the network thread.
  bool on_network_thread() const override;
  /// Runs `task` on the network thread (later, never inline).
  void post(std::function<void()> task);
  /// On the network thread: keeps the loop running until `done()` or the deadline (a blocking
  /// call made by a handler that runs on this thread). False at the deadline.
  bool run_until(const std::function<bool()>& done,
                 std::chrono::steady_clock::time_point deadline) override;
  bool can_run_nested() const override { return true; }

  // transport
  void send_to_holder(std::string client_id, link::v2::Command cmd) override;
  /// Within an outbox_scope, the client_id and bytes are kept as they are and encoded straight
  /// onto the link by the network thread; elsewhere, a command like send_to_holder's.
  void send_to_client(std::string_view client_id, message&& msg) override;
  void send_to_client(std::string_view client_id, const message& msg) override;
  void send_to_all(link::v2::Command cmd) override;
  void send_each(command_builder build) override;
  void request_each(command_builder build, std::chrono::milliseconds timeout,
                    gather_handler done) override;
  std::chrono::milliseconds default_timeout() const override { return options_.query_timeout; }
  bool stopped() const override { return stopped_.load(std::memory_order_acquire); }
  /// Pushes dropped because a gateway took them slower than they were made (its link held
  /// k_max_push_backlog unsent bytes), or because they were made before start() past
  /// k_max_posted_bytes. Any thread.
  std::uint64_t pushes_dropped() const { return pushes_dropped_.load(std::memory_order_relaxed); }
  /// Most bytes of writes other threads may have handed to the network thread undelivered
  /// (before start(), nothing delivers them: past it they are dropped and counted).
  static constexpr std::size_t k_max_posted_bytes = 64 << 20;
  /// Bytes a handler's outbox collects before it hands them over without waiting for the end
  /// of the call, so that one call's writes meet the bounds above as they are made.
  static constexpr std::size_t k_outbox_flush_bytes = 1 << 20;
  /// Most unsent bytes a link may hold before further pushes to that gateway are dropped
  /// (below the link's own cap, past which it would be cut as not reading).
  static constexpr std::size_t k_max_push_backlog = 64 << 20;

 private:
  friend class outbox_scope;

  /// send_to_client's part for a handler's outbox (or after stop()): true when `msg` was taken
  /// care of, false when it goes the way of any other command.
  bool send_from_handler(std::string_view client_id, const message& msg);

  // A frame on its way to the network thread, with where it goes.
  struct outbound {
    enum class route : std::uint8_t { holder, all, each, link, client_message };
    route kind = route::all;
    // holder: the client_id; link: the gateway_id.
    std::string key;
    std::uint64_t serial = 0;
    link::v2::Frame frame;
    command_builder build;
    // client_message: the client_id then the message bytes, at `text_at` in the batch's text.
    std::size_t text_at = 0;
    std::uint32_t id_size = 0;
    std::uint32_t data_size = 0;
    bool binary = false;

    /// What it counts for on its way (a builder's command: a fixed figure until it is built).
    std::size_t queued_bytes() const;
  };
  // What an outbox_scope hands to the network thread at once. Its buffers are reused from one
  // batch to the next when the scope lives on the network thread.
  struct batch {
    std::vector<outbound> items;
    std::string text;
    // Acks: the links (usually one), then (index into ack_links, event_id) in ack order.
    std::vector<link_ref> ack_links;
    std::vector<std::pair<std::uint32_t, std::uint64_t>> acks;
    // Encoded size of the items' frames (client messages are in `text`).
    std::size_t frame_bytes = 0;

    bool empty() const { return items.empty() && acks.empty(); }
    /// Bytes the batch holds, as handed over (what hand_over() counts).
    std::size_t bytes() const {
      return text.size() + frame_bytes + items.size() * 64 + acks.size() * 16;
    }
    void clear();
  };
  struct gather;
  struct pending_request {
    std::shared_ptr<gather> owner;
    std::string gateway_id;
    std::uint64_t serial = 0;
    std::string address;
  };

  /// stop()'s first part, once: closes the links from the network thread, lets it end.
  void begin_stop();
  void enqueue(outbound item);
  void deliver(outbound& item, std::string_view text = {});
  void deliver(batch& b);
  /// Posts `task`, `bytes` of writes, to the network thread from another thread; waits first
  /// while what other threads handed over and the network thread has not delivered yet is
  /// over k_max_posted_bytes. Before start() it does not wait: past the bound the task is
  /// dropped (counted as a dropped push) and false returned.
  bool hand_over(std::size_t bytes, std::function<void()> task);
  /// Whether `link` takes one more push (its unsent bytes under k_max_push_backlog); counts
  /// and logs the push dropped otherwise. Network thread.
  bool push_room(gateway_link& link);
  /// Counts a push dropped and logs it (a line per interval at most), `why` saying where it
  /// was held up and `bytes` how much was there. Any thread.
  void push_dropped(std::string_view where, std::size_t bytes);
  void deliver_acks(const batch& b);
  /// The link that holds the client `client_id` if it is up, else null.
  gateway_link* holder_of(std::string_view client_id);
  void apply_set(const std::vector<registry::gateway_entry>& gateways);
  void on_link_up(gateway_link& link);
  void on_link_down(gateway_link& link);
  void on_frame(gateway_link& link, link::v2::Frame& frame, std::string_view payload);
  void send_drain(gateway_link& link);
  void drain_answered(const std::string& gateway_id, std::uint64_t serial);
  void publish_drain();
  void on_reply(link::v2::Reply& reply);
  void start_gather(command_builder& build, std::chrono::milliseconds timeout,
                    gather_handler& done);
  void drop_requests_of(const std::string& gateway_id, std::uint64_t serial);
  /// The request `p` was answered or given up: its link may pause again.
  void request_ended(const pending_request& p);
  void finish_if_done(const std::shared_ptr<gather>& g);
  // Copies the links' state into status_ for other threads; `set_applied`: the registers' set
  // has been applied (wait_ready() may answer from then on).
  void publish_status(bool set_applied = false);

  core_options options_;
  std::shared_ptr<const link_settings> link_settings_;
  link_change_handler on_link_change_;
  link_lost_handler on_link_lost_;
  event_handler on_event_;
  drain_request_handler on_drain_request_;

  mutable asio::io_context io_;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_;
  std::thread thread_;
  std::mutex join_mutex_;  ///< one joiner of thread_
  std::unique_ptr<registry::gateway_watcher> watcher_;
  std::atomic<bool> started_{false};
  std::atomic<bool> stopped_{false};

  // Writes handed to the network thread by other threads and not delivered yet: a caller
  // waits while they are over k_max_posted_bytes (a push loop is held to the pace of the
  // links instead of growing the process). See hand_over().
  std::atomic<std::size_t> posted_bytes_{0};
  std::atomic<int> post_waiters_{0};
  std::mutex post_mutex_;
  std::condition_variable post_room_;
  // Pushes not queued on a link holding k_max_push_backlog unsent bytes (network thread
  // writes; any thread reads).
  std::atomic<std::uint64_t> pushes_dropped_{0};
  std::mutex push_drop_mutex_;  ///< taken only to log a dropped push
  log_throttle push_drop_log_;  ///< under push_drop_mutex_

  // Network thread only.
  std::map<std::string, std::shared_ptr<gateway_link>, std::less<>> links_;
  // Linked gateways the registers no longer list: dropped when their link goes down.
  std::set<std::string, std::less<>> unlisted_;
  std::unordered_map<std::uint64_t, pending_request> pending_;
  std::uint64_t next_request_id_ = 1;
  // hold_events(): links are not read but for answers.
  bool events_held_ = false;
  // Set by start_drain(); the links sent Drain and not answered yet: gateway_id -> serial.
  std::optional<std::string> drain_reason_;
  std::map<std::string, std::uint64_t> drain_waiting_;
  std::uint64_t drains_sent_ = 0;
  // The buffers of the last outbox_scope that ended on this thread, emptied, for the next one:
  // a scope per read batch would otherwise grow its vectors and text from nothing each time.
  batch spare_outbox_;
  // The EventAck frame deliver_acks() fills, kept so its id list keeps its room.
  link::v2::Frame ack_frame_;

  // What other threads may read.
  mutable std::mutex status_mutex_;
  std::condition_variable status_changed_;
  std::vector<gateway_status> status_;
  bool set_applied_ = false;
  bool loop_done_ = false;
  bool drain_started_ = false;
  // The network thread has applied start_drain() (drain_unanswered_ is meaningful).
  bool drain_applied_ = false;
  std::vector<std::string> drain_unanswered_;
  std::uint64_t drain_generation_ = 0;
};

/// Batches what the current thread sends through `core` while the scope lives: commands keep
/// their order and reach the network thread in one hand-over when the scope ends (or earlier:
/// before a request, so a query still follows the writes issued before it, and whenever the
/// batch holds k_outbox_flush_bytes, so a handler that pushes much in one call is held to the
/// core's bounds as it goes instead of growing its batch). Event acks are
/// collected too and leave as one EventAck per link, after the commands. Not thread-safe: one
/// scope per thread, used on that thread.
class outbox_scope {
 public:
  explicit outbox_scope(cluster_core& core);
  ~outbox_scope();
  outbox_scope(const outbox_scope&) = delete;
  outbox_scope& operator=(const outbox_scope&) = delete;

  /// Acknowledges an event of `link` when the batch leaves.
  void ack(const link_ref& link, std::uint64_t event_id);
  /// Hands everything collected so far to the network thread.
  void flush();

 private:
  friend class cluster_core;

  /// Queues a message for one client (cluster_core::send_to_client).
  void add_client_message(std::string_view client_id, const message& msg);
  /// Queues any other command or frame (cluster_core::enqueue).
  void add(cluster_core::outbound item);
  /// Hands the batch over once it holds k_outbox_flush_bytes.
  void flush_if_large();

  cluster_core& core_;
  outbox_scope* previous_;
  cluster_core::batch batch_;
};

}  // namespace gwx::cluster
