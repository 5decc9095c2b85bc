#pragma once

#include <asio.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "common/codec/ws_frame.hpp"
#include "common/net/batched_io.hpp"
#include "common/net/read_poller.hpp"
#include "common/net/send_queue.hpp"
#include "gateway/outbound.hpp"
#include "gateway/tick_wheel.hpp"
#include "gateway/write_batch.hpp"

namespace gwx::gateway {

class client_session;
class session_events;

/// What the client sessions of one event loop share, so that a connection owns no timer and,
/// while idle, no send queue and no read buffer: the loop's coarse timer wheel (handshake, idle,
/// heartbeat and close deadlines), the sessions with bytes to write at the end of this turn of
/// the loop (one write per client however many messages it got meanwhile, and those writes of
/// plain connections handed to the kernel together: batched_io), the read readiness of its plain
/// connections (read_poller) and the reads of those reported in a turn (made together too, into
/// one buffer of the loop's), and spare send queues. One per shard; used on its loop only, not
/// thread-safe.
class client_loop {
 public:
  /// Granularity of deadlines: they fire up to this late, never early.
  static constexpr std::chrono::milliseconds k_tick{50};
  using clock = std::chrono::steady_clock;

  /// Most bytes one read of a client takes (a turn with fewer clients to read gives each up to
  /// this much; with more, an even share of k_read_buffer).
  static constexpr std::size_t k_read_most = 64 * 1024;
  /// The loop's read buffer, shared by the reads of a turn.
  static constexpr std::size_t k_read_buffer = 512 * 1024;

  /// `io_uring`: batch the reads and the writes of a turn through io_uring where the kernel
  /// allows it.
  client_loop(asio::io_context& io, session_events& events, bool io_uring = true);
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

  /// From flush(): lists a non-blocking write of `head` (nothing queued behind it) to `s`'s
  /// socket, made with the other writes of this turn; `s` hears the result through
  /// on_batched_write(&head, result).
  void write_later(client_session& s, const wire_bytes& head);
  /// The same for `bufs`, the buffers `s`'s send queue has in flight (gather());
  /// on_batched_write(nullptr, result).
  void write_later(client_session& s, const std::vector<asio::const_buffer>& bufs);
  /// How this loop's writes reach the kernel.
  const net::batched_io& sender() const { return sender_; }
  /// From on_poll_ready(): has `s` read with the other sessions the read set reported in this
  /// turn, all in one call once each was reported; `s` hears on_batched_read(data, result).
  void read_later(client_session& s);
  /// Read readiness of this loop's plain client sockets.
  net::read_poller<client_session>& reads() { return reads_; }

  /// Bytes of unfinished client messages this loop's sessions may hold together (read buffers
  /// and WebSocket fragments): its share of --unfinished-max-bytes.
  void set_unfinished_budget(std::size_t bytes) { unfinished_budget_ = bytes; }
  /// Session `s`'s unfinished bytes changed from `held` (its last report, updated) to `now`.
  /// Past the loop's budget, the sessions whose unfinished message is the oldest let theirs go
  /// first (closed, overload), so that a client pinning memory with a message it never finishes
  /// cannot keep the others' messages out. False when `s` itself is the oldest left and the
  /// loop is still over its budget: `s` must let its bytes go (let_go_unfinished()).
  bool hold_unfinished(client_session& s, std::size_t& held, std::size_t now);

  /// A send queue with this cap, from the spares when there is one.
  std::unique_ptr<net::send_queue> take_queue(std::size_t cap);
  /// Takes back an empty queue (kept as a spare, or freed).
  void give_back(std::unique_ptr<net::send_queue> queue);
  /// A WebSocket frame parser for messages of at most `max_message` bytes, from the spares
  /// when there is one: a session holds one only while a message is under way.
  std::unique_ptr<codec::ws::frame_parser> take_parser(std::size_t max_message);
  /// Takes back a parser between messages (kept as a spare, or freed).
  void give_back(std::unique_ptr<codec::ws::frame_parser> parser);

 private:
  std::uint64_t tick_of(clock::time_point t) const;
  void arm();
  void on_tick();
  void post_flush();
  void flush_all();
  void write_listed();
  void read_listed();
  /// Logs that `io` (the loop's `what`, one `each`) stopped using io_uring, if it did during a
  /// run that started `was_batched`.
  static void note_unbatched(const net::batched_io& io, bool was_batched, const char* what,
                             const char* each);

  asio::io_context& io_;
  session_events& events_;
  clock::time_point origin_;
  tick_wheel wheel_;
  asio::steady_timer timer_;
  bool ticking_ = false;
  write_batch<client_session> to_flush_;
  bool flush_posted_ = false;
  std::size_t unfinished_ = 0;
  std::size_t unfinished_budget_ = static_cast<std::size_t>(-1);
  /// The sessions holding unfinished bytes, in the order they started to (linked through
  /// client_session::unfinished_older_/_newer_): who lets go first past the budget.
  client_session* oldest_unfinished_ = nullptr;
  client_session* newest_unfinished_ = nullptr;
  std::vector<std::unique_ptr<net::send_queue>> spare_queues_;
  std::vector<std::unique_ptr<codec::ws::frame_parser>> spare_parsers_;
  /// A write listed with sender_ (the index is its tag): who gets the result, and the head it
  /// wrote (null for a queue's gather), both kept alive until the result is in.
  struct listed_write {
    std::shared_ptr<client_session> session;
    wire_bytes head;
  };
  net::read_poller<client_session> reads_;  // before what holds sessions: outlives them
  net::batched_io sender_;
  std::vector<listed_write> writes_;
  std::vector<listed_write> running_writes_;
  /// Reads of plain sessions, listed in a turn of reads_ and made at its end.
  net::batched_io receiver_;
  std::vector<std::shared_ptr<client_session>> to_read_;
  std::vector<std::shared_ptr<client_session>> running_reads_;
  std::unique_ptr<char[]> read_buffer_;  ///< k_read_buffer bytes, from the first read on
};

}  // namespace gwx::gateway
