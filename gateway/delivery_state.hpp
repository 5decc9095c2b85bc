#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>

#include "gateway/client_event.hpp"
#include "gateway/event_fifo.hpp"

namespace gwx::gateway {

/// An event sent to a worker, waiting for its acknowledgement.
struct sent_event {
  event_ptr event;
  std::chrono::steady_clock::time_point sent;
  std::size_t bytes = 0;
  /// Times it was handed to a worker (1: first delivery).
  std::uint8_t attempts = 1;
};

/// An event waiting for a worker.
struct held_event {
  event_ptr event;
  std::size_t bytes = 0;
  std::chrono::steady_clock::time_point since;
  /// Times it was already handed to a worker that vanished before acknowledging it.
  std::uint8_t attempts = 0;
};

/// One client's delivery state: kept in its client_record, changed only by event_router.
class delivery_state {
 public:
  /// Sticky worker link; 0: none yet.
  std::uint64_t worker_id() const { return worker_id_; }
  std::size_t unacked_count() const { return unacked_.size(); }
  std::size_t held_count() const { return held_.size(); }
  std::size_t held_bytes() const { return held_bytes_; }
  std::size_t unacked_bytes() const { return unacked_bytes_; }
  /// Reading from the client is paused until its events can go out again.
  bool paused() const { return paused_; }
  /// Nothing of this client awaits delivery or acknowledgement.
  bool idle() const { return unacked_.empty() && held_.empty(); }
  /// The client's uid or session changed: its worker gets its ClientInfo again before its
  /// next event.
  void info_changed() { info_sent_ = false; }

 private:
  friend class event_router;

  std::uint64_t worker_id_ = 0;
  /// Sent to `worker_id_` and not acknowledged yet (at-least-once), oldest first.
  event_fifo<sent_event> unacked_;
  std::size_t unacked_bytes_ = 0;
  /// Waiting for a worker (none linked, or the previous one still finishing), oldest first.
  event_fifo<held_event> held_;
  std::size_t held_bytes_ = 0;
  /// Per-client part of event ids (wraps; only compared for equality).
  std::uint16_t next_seq_ = 0;
  bool paused_ = false;
  /// `worker_id_` has the client's current ClientInfo.
  bool info_sent_ = false;
};

}  // namespace gwx::gateway
