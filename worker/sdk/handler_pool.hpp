#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "common/cluster/cluster_core.hpp"
#include "worker/sdk/event_runner.hpp"

namespace gwx::sdk {

/// Runs a worker's handlers, in one of two modes:
///
/// - inline (`threads` == 0, the default of gwx-worker): handlers run on the network thread
///   itself, so an event costs no thread hand-off at all. Events that arrive on a link are
///   queued and run from a task of the loop (never inside a link's read), one after another in
///   arrival order; their commands go straight onto the links and the acks of a batch leave as
///   one EventAck per link. A blocking Gateway API call from a handler keeps the loop running
///   until its answer arrives; events arriving meanwhile wait in the queue (order holds).
/// - threads (`threads` >= 1): each client's events go to one handler thread (by a hash of its
///   client_id), in arrival order; each thread takes everything queued in one go, runs it, and
///   hands its output (commands, decisions, then one EventAck per link) to the network thread
///   in one batch. For handlers that do slow or blocking work of their own.
///
/// The events queued and not yet run are bounded in bytes (`max_queued_bytes`: payloads plus
/// k_event_overhead each): once the bound is reached the pool holds the links (the core stops
/// reading them, so TCP backpressure reaches the gateways, which hold their clients back), and
/// lets them go once what is queued is down to half of it. Nothing is dropped or reordered: an
/// event is queued and acknowledged after it ran as before. A link with a Gateway API request
/// outstanding is read regardless (the answer comes behind the events, and the handler that
/// waits for it may be the one that has to run them), so a handler that queries under a flood
/// can exceed the bound by what the gateways queued before their answers. In inline mode the
/// loop reads little while a handler runs anyway; there the bound matters while handlers wait
/// for answers.
///
/// When a link goes down, what happens to its events still queued (not started) depends on its
/// gateway: one that redelivers (at-least-once, said in its Welcome) hands them to another
/// worker, or to this one once relinked, so they are skipped here (not run, not acknowledged;
/// counted in skipped()): run here too, their clients would get two answers. Events of a
/// gateway that does not redeliver (at-most-once) still run: here is their only chance.
///
/// A handler call that runs longer than `stall_warn` (one that never returns stalls its clients
/// and, once the bound above is reached, every link) is reported: a warning line every 10 s at
/// most, naming the thread, the event kind and how long the call has run, and
/// stalled_handlers() for a gauge. Each thread stores its call's start in an atomic; a watch
/// thread of the pool looks at them, so an event costs no lock for it.
///
/// dispatch() is called on the network thread; start(), stop(), wait_idle() and unfinished()
/// from any other thread.
class handler_pool {
 public:
  /// What an event counts for beside its payload (its slot, its client's info).
  static constexpr std::size_t k_event_overhead = 512;
  /// Default bound of the queued events, in bytes.
  static constexpr std::size_t k_default_max_queued_bytes = 16 * 1024 * 1024;

  /// Default time past which a running handler call is reported as stalled.
  static constexpr std::chrono::milliseconds k_default_stall_warn{10000};

  /// `max_queued_bytes`: bound of the events queued and not yet run (at least 1);
  /// `stall_warn`: a handler call running longer is reported (zero: never).
  handler_pool(std::size_t threads, handler& app, gateway_api& api, cluster::cluster_core& core,
               std::size_t max_queued_bytes = k_default_max_queued_bytes,
               std::chrono::milliseconds stall_warn = k_default_stall_warn);
  ~handler_pool();
  handler_pool(const handler_pool&) = delete;
  handler_pool& operator=(const handler_pool&) = delete;

  /// Starts the threads; events dispatched before wait for this.
  void start();
  /// Queues an event for its client's thread, with its payload and its client's info (null:
  /// only the client_id is known); may move from `event`. Dropped once stopping.
  void dispatch(const cluster::link_ref& link, link::v2::ClientEvent& event,
                std::string_view payload, const link_clients::client_view* client);
  /// The link `link` went down: the runners forget the session writes made for its events
  /// (they may never reach the gateway), once the events of that link queued before have run
  /// or, when `gateway_redelivers`, been skipped. Network thread.
  void link_lost(const cluster::link_ref& link, bool gateway_redelivers);
  /// Runs what is queued, then joins the threads. Idempotent.
  void stop();

  /// Waits until every event dispatched so far has run and its output (commands, decisions,
  /// acks) has been handed to the network thread; false at the deadline. Any thread but the
  /// handler threads.
  bool wait_idle(std::chrono::steady_clock::time_point deadline);
  /// Events dispatched and not yet run to the end (queued or running).
  std::size_t unfinished() const;
  /// Bytes of the events queued and not yet run to the end (payloads plus k_event_overhead
  /// each). Any thread.
  std::size_t queued_bytes() const { return queued_bytes_.load(std::memory_order_relaxed); }
  /// Whether the pool holds the links now (the bound was reached, not yet down to half).
  /// Network thread.
  bool holding() const { return holding_; }

  /// Events run since construction.
  std::uint64_t handled() const { return handled_.load(std::memory_order_relaxed); }
  /// Events skipped since construction: queued when their link went down, their gateway
  /// redelivering them elsewhere. Any thread.
  std::uint64_t skipped() const { return skipped_.load(std::memory_order_relaxed); }

  /// Handler threads (0: inline on the network thread).
  std::size_t size() const { return inline_mode_ ? 0 : lanes_.size(); }
  /// Handler calls (one per thread at most; inline: the network thread's) running for longer
  /// than `stall_warn` now; 0 when that is zero. Any thread.
  std::size_t stalled_handlers() const;

 private:
  /// Events waiting for a runner, in slots reused from one batch to the next (filled by
  /// dispatch, then swapped whole with the runner's empty batch).
  struct event_queue {
    std::vector<client_event> slots;
    std::size_t size = 0;

    client_event& add();
    bool empty() const { return size == 0; }
    /// Empties it after a run, giving back what a burst or a large message took.
    void recycle();
  };
  /// A link that went down, and whether its gateway redelivers its unacknowledged events.
  struct lost_link {
    cluster::link_ref link;
    bool redelivers = false;
  };
  struct lane {
    mutable std::mutex mutex;
    std::condition_variable wake;
    /// Signalled when the lane becomes idle (queue empty, nothing running).
    std::condition_variable idle;
    event_queue queue;
    /// Links that went down since the runner last looked (handled after the queued events).
    std::vector<lost_link> lost;
    /// `lost` names a link whose events are skipped: the runner looks at it (under the lock)
    /// before each event of the batch it runs, not only when it takes the next one.
    std::atomic<bool> skip_pending{false};
    /// Events taken from the queue whose output has not been handed over yet.
    std::size_t running = 0;
    bool stopping = false;
    std::thread thread;
    std::unique_ptr<event_runner> runner;
    /// When the handler call running now began (steady clock ticks; 0: none) and its event's
    /// kind: written by the thread that runs it, read by the stall watch.
    std::atomic<std::int64_t> call_since{0};
    std::atomic<int> call_kind{0};
  };

  void run(lane& l);
  /// Counts `bytes` more queued; holds the links at the bound. Network thread.
  void queued(std::size_t bytes);
  /// An event of `bytes` has run: below the low-water mark the links are let go (from the
  /// network thread). Any thread.
  void ran(std::size_t bytes);
  /// Lets the links go if the pool holds them and is down to the low-water mark. Network
  /// thread.
  void release_if_drained();
  /// Inline mode: runs what is queued (a task of the network loop).
  void run_inline();
  /// Runs one event on `l`'s runner, its start time visible to the stall watch, or, when
  /// `skip`, only counts it skipped; either way its bytes leave the bound (ran()).
  void run_one(lane& l, client_event& event, event_sink& sink, bool skip);
  /// Threads mode: whether `event` is to be skipped, its link lost (before its batch was
  /// taken: in `taken`; or since: in the lane's list) and its gateway redelivering.
  static bool skips(lane& l, const std::vector<lost_link>& taken, const client_event& event);
  /// The stall watch's thread: looks at the running calls every second (or `stall_warn_`).
  void watch_stalls();
  /// The calls running past `stall_warn_` now: how many, and the longest (its lane, how long).
  struct stalls {
    std::size_t count = 0;
    std::size_t longest = 0;
    std::chrono::steady_clock::duration longest_for{0};
  };
  stalls find_stalls() const;

  cluster::cluster_core& core_;
  bool inline_mode_ = false;
  std::size_t max_queued_bytes_;
  std::size_t low_water_;
  // Raised on the network thread, lowered by whoever ran the event.
  std::atomic<std::size_t> queued_bytes_{0};
  // Network thread only.
  bool holding_ = false;
  // Inline mode; the queue and flags are touched on the network thread only. The count of
  // unfinished events is written there only too (no lock per event); threads that wait for
  // idleness read it, and run_inline() lowers it under idle_mutex_ before it wakes them.
  event_queue inline_queue_;
  // The events run_inline() is running (events dispatched meanwhile go to inline_queue_).
  event_queue inline_batch_;
  bool inline_scheduled_ = false;
  bool inline_running_ = false;
  // Links lost while run_inline() runs or has events queued: handled once it has run what it
  // took; the events of those whose gateway redelivers are skipped meanwhile.
  std::vector<lost_link> inline_lost_;
  std::atomic<bool> inline_started_{false};
  std::atomic<bool> inline_stopping_{false};
  mutable std::mutex idle_mutex_;
  std::condition_variable idle_changed_;
  std::atomic<std::size_t> inline_unfinished_{0};
  // Above any number an earlier process of this worker used (first_writer_seq()).
  std::atomic<std::uint64_t> writer_seq_;
  std::atomic<std::uint64_t> handled_{0};
  std::atomic<std::uint64_t> skipped_{0};
  std::vector<std::unique_ptr<lane>> lanes_;
  bool started_ = false;
  std::chrono::milliseconds stall_warn_;
  // The stall watch: its thread, and what ends it.
  std::thread stall_watch_;
  std::mutex stall_mutex_;
  std::condition_variable stall_wake_;
  bool stall_watch_stopping_ = false;
  log_throttle stall_log_;  ///< stall watch thread
};

}  // namespace gwx::sdk
