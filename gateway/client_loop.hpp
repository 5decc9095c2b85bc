#pragma once

#include <asio.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "common/net/send_queue.hpp"
#include "gateway/outbound.hpp"
#include "gateway/tick_wheel.hpp"
#include "gateway/write_batch.hpp"

namespace gwx::gateway {

class client_session;
class session_events;

/// What the client sessions of one event loop share, so that a connection owns no timer and,
/// while idle, no send queue: the loop's coarse timer wheel (handshake, idle, heartbeat and
/// close deadlines), the sessions with bytes to write at the end of this turn of the loop (one
/// write per client however many messages it got meanwhile), and spare send queues. One per
/// shard; used on its loop only, not thread-safe.
class client_loop {
 public:
  /// Granularity of deadlines: they fire up to this late, never early.
  static constexpr std::chrono::milliseconds k_tick{50};
  using clock = std::chrono::steady_clock;

  client_loop(asio::io_context& io, session_events& events);
  client_loop(const client_loop&) = delete;
  client_loop& operator=(const client_loop&) = delete;

  asio::io_context& io() { return io_; }
  session_events& events() { return events_; }

  /// Schedules `s`'s on_deadline() at `deadline` or up to k_tick later.
  void schedule(client_session& s, clock::time_point deadline);

  /// Has `s` flush() once the handlers running now are done. Asked once per turn (the
  /// session remembers it asked).
  void flush_later(client_session& s);
  /// The same, with `head` the first bytes to write to `s` (a broadcast's shared buffer, held
  /// here once for all its recipients, not in `s`'s queue).
  /// (Inline: it is called once per recipient of a broadcast.)
  void flush_later(client_session& s, const wire_bytes& head) {
    to_flush_.add(s, head);
    if (!flush_posted_) {
      post_flush();
    }
  }
  /// Keeps `s` alive until the flush it asked for has run (it closes meanwhile).
  void keep_until_flushed(std::shared_ptr<client_session> s);

  /// A send queue with this cap, from the spares when there is one.
  std::unique_ptr<net::send_queue> take_queue(std::size_t cap);
  /// Takes back an empty queue (kept as a spare, or freed).
  void give_back(std::unique_ptr<net::send_queue> queue);

 private:
  std::uint64_t tick_of(clock::time_point t) const;
  void arm();
  void on_tick();
  void post_flush();
  void flush_all();

  asio::io_context& io_;
  session_events& events_;
  clock::time_point origin_;
  tick_wheel wheel_;
  asio::steady_timer timer_;
  bool ticking_ = false;
  write_batch<client_session> to_flush_;
  bool flush_posted_ = false;
  std::vector<std::unique_ptr<net::send_queue>> spare_queues_;
};

}  // namespace gwx::gateway
