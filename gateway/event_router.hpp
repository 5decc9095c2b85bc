#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/logging.hpp"
#include "gateway/client_directory.hpp"
#include "gateway/client_event.hpp"
#include "gateway/gateway_metrics.hpp"

namespace gwx::gateway {

/// A worker link as one loop's router sees it. Implementations say how an event reaches the
/// link (posting to the link's loop when it is another one).
class worker_port {
 public:
  virtual ~worker_port() = default;
  virtual std::uint64_t id() const = 0;
  /// Draining: gets no new clients; its clients move on once it acknowledged their events.
  virtual bool draining() const = 0;
  /// Hands one event to the link (from the router's loop).
  virtual void send_event(const event_ptr& event) = 0;
  /// Hands a client's ClientInfo frame to the link, ordered with the events.
  virtual void send_client_info(const event_ptr& info) = 0;
  /// The link's send queue is past its high-water mark: hold events back.
  virtual bool backpressured() const { return false; }
};

/// Event figures of one loop, for stats.
struct event_counts {
  std::uint64_t queued = 0;
  std::uint64_t in_flight = 0;
  std::uint64_t redelivered = 0;
  std::uint64_t dropped = 0;
  /// Per worker id: clients stuck to it, events in flight to it.
  struct worker_load {
    std::uint64_t clients = 0;
    std::uint64_t in_flight = 0;
  };
  std::map<std::uint64_t, worker_load> by_worker;
};

/// How events are delivered and how long they may wait for a worker.
struct delivery_config {
  /// at-least-once (false): keep each event until acknowledged and redeliver it elsewhere if
  /// its worker goes away; at-most-once (true): forget it once handed to a link.
  bool at_most_once = false;
  /// Per-client bounds of events held while no worker can take them.
  std::size_t queue_max_events = 1000;
  std::size_t queue_max_bytes = 1 << 20;
  std::chrono::milliseconds queue_max_age{60000};
  /// Past a bound: close the client (true) or drop its oldest events (false).
  bool queue_close_client = false;
  /// Per-client bounds of events sent and not yet acknowledged (at-least-once). Past one, or
  /// while the worker's link is backpressured, the client's events are held and reading from
  /// it is paused until acknowledgements make room.
  std::size_t inflight_max_events = 64;
  std::size_t inflight_max_bytes = 1 << 20;
  /// Times an event may be handed to a worker: one that was the oldest unacknowledged event
  /// of its client whenever its worker vanished that often is dropped (quarantined), not
  /// replayed forever.
  unsigned max_attempts = 3;
};

/// Delivers one loop's client events to workers: a client sticks to one worker; new clients go
/// round-robin to non-draining workers; events wait per client (bounded by count, bytes and
/// age) while no worker can take them; sent events are kept until acknowledged and handed,
/// flagged, to another worker if theirs vanishes; a client's order holds across a drain
/// switch-over. Events in flight are bounded per client (count, bytes) and per link (its
/// backpressure): past a bound a client's events are held and its reading paused. An event
/// whose workers keep vanishing before acknowledging it is quarantined after a bounded number
/// of attempts. Ahead of a client's first event on a link, and of its next event after its
/// uid or session changed, goes its ClientInfo frame; a CLOSE carries it itself. Time comes in
/// as `now`. No sockets or timers; one loop only, not thread-safe.
class event_router {
 public:
  using clock = std::chrono::steady_clock;

  /// `gateway_address` (the address client_ids name) is read when a ClientInfo frame is
  /// built, so it may be set after the router is made; it must outlive the router.
  event_router(client_directory& clients, unsigned loop, delivery_config config,
               const event_metrics& metrics, const std::string& gateway_address);
  event_router(const event_router&) = delete;
  event_router& operator=(const event_router&) = delete;

  /// The id of the client's next event: [connection without its loop byte][per-client
  /// sequence, 16 bits][loop], so an acknowledgement finds its loop and client without a table.
  std::uint64_t next_event_id(client_record& c);
  /// The loop an event id belongs to.
  static unsigned loop_of_event(std::uint64_t event_id) {
    return static_cast<unsigned>(event_id & 0xff);
  }

  /// Sends the event to the client's worker, or holds it; false when it had to be held.
  bool dispatch(client_record& c, event_ptr event, clock::time_point now);
  /// Whether the client's next event can reach a worker now or once its previous (draining)
  /// worker finished; false (and a rate-limited warning) when no worker is linked.
  bool has_route(client_record& c, clock::time_point now);
  /// Erases a closed client from the directory once nothing of it awaits delivery.
  void forget_if_done(client_record& c);

  /// Replaces the worker set: events a vanished worker did not acknowledge go to another
  /// worker (flagged redelivered, before the client's held events), held events go out.
  /// `version` orders the sets as they were published: a set older than the one applied last
  /// arrived late (a loop's posts to itself queue behind other threads' posts) and is ignored,
  /// so a worker is never taken for gone, or for linked, by a stale set. False when ignored.
  bool set_workers(std::uint64_t version, std::vector<std::shared_ptr<worker_port>> workers,
                   clock::time_point now);
  bool has_workers() const { return !workers_.empty(); }
  /// Acknowledgements from a worker for events of this loop's clients.
  void on_acks(const std::vector<std::uint64_t>& event_ids, clock::time_point now);
  /// Applies the age bound to held events and retries clients held back by link
  /// backpressure (called periodically).
  void sweep(clock::time_point now);

  /// Held plus unacknowledged events of every client.
  std::size_t pending() const;
  event_counts counts() const;

 private:
  struct worker_slot {
    std::uint64_t id;
    bool draining;
    worker_port* port;
  };
  /// The worker for the client's next event; null with `wait` set while the previous
  /// (draining) worker still has unacknowledged events of it, null alone when none is linked.
  worker_port* pick(client_record& c, bool& wait);
  /// Whether an event of `bytes` may go to `w` now within the in-flight bounds.
  bool room_for(const client_record& c, const worker_port& w, std::size_t bytes) const;
  /// `attempts`: times the event was handed to a worker, this one included.
  void send_to(client_record& c, worker_port& w, event_ptr event, std::size_t bytes,
               std::uint8_t attempts, clock::time_point now);
  /// Drops an event handed out `max_attempts` times to workers that all vanished.
  void quarantine(const client_record& c, const sent_event& e, clock::time_point now);
  void hold(client_record& c, event_ptr event, clock::time_point now);
  /// Holds the client back: pauses its reading until its held events went out.
  void throttle(client_record& c);
  void unthrottle(client_record& c);
  void flush_held(client_record& c, clock::time_point now);
  /// Whether an event of `bytes` can join `c`'s held events within both queue bounds.
  bool fits_held(const client_record& c, std::size_t bytes) const;
  /// Drops `c`'s oldest held events until one of `bytes` fits (or none is left).
  void make_room(client_record& c, std::size_t bytes, clock::time_point now);
  bool linked(std::uint64_t worker_id) const;
  void warn_queue(const char* what, clock::time_point now);

  client_directory& clients_;
  const std::string& gateway_address_;
  unsigned loop_;
  delivery_config config_;
  const event_metrics& metrics_;
  std::vector<std::shared_ptr<worker_port>> ports_;
  /// Version of the worker set applied last (0: none yet).
  std::uint64_t workers_version_ = 0;
  std::vector<worker_slot> workers_;
  std::size_t next_worker_ = 0;
  std::unordered_set<std::uint64_t> waiting_;    ///< connections with held events
  std::unordered_set<std::uint64_t> throttled_;  ///< connections paused by an in-flight bound
  std::uint64_t redelivered_ = 0;
  std::uint64_t dropped_ = 0;
  /// Rate limit per kind of queue warning (keyed by the message's static text), so one kind
  /// never hides another.
  std::unordered_map<const char*, log_throttle> queue_warnings_;
};

}  // namespace gwx::gateway
