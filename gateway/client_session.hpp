#pragma once

#include <asio.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/codec/ws_frame.hpp"
#include "common/codec/ws_handshake.hpp"
#include "common/net/send_queue.hpp"
#include "common/net/tls_io.hpp"
#include "gateway/client_port.hpp"
#include "gateway/handshake_limiter.hpp"
#include "gateway/listener_config.hpp"
#include "gateway/outbound.hpp"
#include "gateway/tick_wheel.hpp"

namespace gwx::gateway {

class client_loop;
class client_record;

/// A client's socket, bound to its loop's io_context (a concrete executor: smaller than
/// asio::ip::tcp::socket's type-erased one, and no indirection per operation).
using client_socket = asio::basic_stream_socket<asio::ip::tcp, asio::io_context::executor_type>;

/// One client connection on a public listener. Lives on its shard's loop for its whole life;
/// not thread-safe (other threads post to the shard). Moves bytes between the socket and the
/// listener's codec and reports connect, messages and close upward through session_events;
/// what the cluster knows of the client (uid, groups, session, delivery) is in its
/// client_record. Its deadlines live in the loop's timer wheel (the hook it derives from), and
/// it holds a send queue only while it has bytes to write. A client of a TLS listener is a
/// tls_client_session (below): the same session with its TLS connection alongside, so plain
/// clients carry nothing for TLS.
class client_session : public client_port,
                       public tick_wheel::hook,
                       public std::enable_shared_from_this<client_session> {
 public:
  client_session(client_loop& loop, const listener_config& listener, client_socket socket);
  ~client_session() override;
  client_session(const client_session&) = delete;
  client_session& operator=(const client_session&) = delete;

  /// The most bytes of unfinished input one client of `listener` may hold, in any state (its
  /// largest message, a frame header, a read held while paused, or an upgrade request and the
  /// frames behind it): what a loop's share of --unfinished-max-bytes must hold at least.
  static std::size_t most_unfinished(const listener_config& listener);

  /// Starts reading (and, for WebSocket, the handshake timer); `record` is this client's entry
  /// in its directory, handed back with every report until on_closed. `place` is held until
  /// the handshake is over (open) or the connection closes, whichever comes first.
  void start(client_record& record, handshake_slot place = {});

  client_state current_state() const override { return state_; }
  send_status send(const wire_bytes& bytes) override;
  /// Encodes `payload` straight into the send queue (a message to this client alone).
  send_status send_message(framing kind, std::string_view payload, bool binary) override;
  /// Stops reading from the socket (its events wait for a worker): TCP backpressure.
  void pause_reading() override;
  /// Reads again after pause_reading().
  void resume_reading() override;
  /// Sends `final_message` (if any), then closes gracefully (WebSocket close 1000).
  void close_gracefully(std::optional<std::pair<std::string_view, bool>> final_message) override;
  void destroy(close_cause cause, const std::string& reason) override;
  /// Closes with a reason the client can read: a WebSocket close frame with `ws_code` and
  /// `reason`, then the connection; TCP clients are closed after their queue is flushed.
  void close_with_reason(close_cause cause, std::uint16_t ws_code,
                         const std::string& reason) override;
  /// The gateway is shutting down: WebSocket clients get close 1001, TCP clients `goodbye`
  /// (when not empty); then the connection closes once flushed.
  void go_away(const std::string& goodbye);
  /// The worker's answer to an on_websocket_connect that had to be asked.
  void on_connect_decision(std::uint32_t http_status, const std::string& body);

  /// Its deadline in the loop's wheel passed (handshake, heartbeat, idle or close linger).
  void on_deadline();
  /// Writes `head` (if not null: the first bytes sent this turn, held by the loop), then what
  /// is queued. Called by the loop once per turn; see client_loop::flush_later.
  void flush(const wire_bytes* head = nullptr);
  /// The result of a write flush() listed with the loop (client_loop::write_later): `head` the
  /// head it wrote (null: the queue's gather), `result` the bytes the socket took or -errno.
  void on_batched_write(const wire_bytes* head, long result);
  /// The loop's read_poller found the socket readable (plain sessions): lists a read with the
  /// loop (client_loop::read_later).
  void on_poll_ready();
  /// That read's result: `result` bytes read into `data` (the loop's buffer, valid during the
  /// call), 0 at the client's end of stream, or -errno.
  void on_batched_read(char* data, long result);
  int native_handle() { return socket_.native_handle(); }

  /// The TLS connection of a client on a TLS listener (null on plain ones).
  const net::tls_io* tls() const;

 protected:
  /// For tls_client_session.
  client_session(client_loop& loop, const listener_config& listener, client_socket socket,
                 bool tls);

 private:
  friend class client_loop;  // the list of sessions holding unfinished bytes

  net::tls_io* tls_io();
  void arm_read();
  /// Leaves the loop's read_poller, if in it (closing, paused, or going away).
  void unwatch();
  /// TLS sessions: the socket is readable (or a read is due again).
  void on_readable();
  /// Keeps the bytes read into the loop's buffer: runs them through the codec, keeps the
  /// unfinished tail. False when the session closed meanwhile.
  bool take(char* data, std::size_t n);
  /// Reports the unfinished bytes held to the loop; past its budget, closes (overload) and
  /// returns false.
  bool within_unfinished_budget();
  /// Drops its unfinished bytes and closes (WebSocket 1013, overload): the loop is over its
  /// --unfinished-max-bytes share and this session's message is the oldest unfinished one.
  void let_go_unfinished();
  /// TLS: runs the handshake, then reads and decrypts all that is there.
  void on_tls_readable(net::tls_io& tls);
  /// TLS: the handshake is done; the WebSocket upgrade or the TCP connect follows.
  void tls_established();
  void tls_handshake_failed(net::tls_failure reason, const std::string& detail);
  /// TLS: waits until the socket is readable (want_read) or writable, then reads again.
  void tls_wait(net::tls_status st);
  /// Reads again; TLS without waiting (OpenSSL may hold decrypted bytes, or the socket bytes
  /// whose readiness was already reported).
  void read_again();
  /// TLS: writes `bufs` (the queue's gather) once the socket takes more.
  void tls_write_rest(const std::vector<asio::const_buffer>& bufs, net::tls_status st);
  /// Runs what was read through the codec; returns the bytes used (the rest is an unfinished
  /// message, kept in pending_).
  std::size_t process(char* data, std::size_t size);
  void consume_pending();
  std::size_t max_pending() const;
  std::size_t handle_handshake(const char* data, std::size_t size);
  std::size_t handle_websocket(char* data, std::size_t size);
  std::size_t handle_stream(const char* data, std::size_t size);
  void deliver(std::string_view payload, bool binary);
  send_status over_cap();
  /// Queues a control frame or handshake answer; `always`: past the cap too (close frames).
  /// Otherwise one over the cap meets --slow-client like a message (and may close the client).
  void push_control(std::string_view bytes, bool always);
  /// A per-thread buffer to encode one control frame into (cleared).
  static std::string& control_scratch();
  void reject_upgrade(close_cause cause, int status, const std::string& body, const char* reason);
  void accept_upgrade();
  /// The send queue, taken from the loop's spares when there is none.
  net::send_queue& out();
  /// Has the loop flush() this session at the end of its turn.
  void do_write();
  /// Writes what is queued: one gathered write now (`batched`: listed with the loop's other
  /// writes of this turn), the rest once the socket takes more.
  void write_queued(bool batched = false);
  /// Writes the rest of a partly written gather once the socket takes more.
  void write_rest(const std::vector<asio::const_buffer>& bufs, std::size_t written);
  void fail(std::uint16_t ws_code, const std::string& reason);
  void finish(close_cause cause, const std::string& reason);
  /// Enters `closing`: finish once the queue is flushed, or after a bounded linger.
  void begin_close(close_cause cause, std::string reason);
  void arm_timer();
  std::chrono::milliseconds tick_period() const;
  /// Heartbeat and idle checks need to know when the client was last heard.
  bool watches_silence() const;

  client_loop& loop_;
  client_record* record_ = nullptr;
  const listener_config& listener_;
  client_socket socket_;
  client_state state_ = client_state::handshake;
  bool reading_ = false;
  bool paused_ = false;
  bool close_after_flush_ = false;
  bool flush_scheduled_ = false;
  /// A tls_client_session (fits in the padding before missed_beats_).
  bool tls_ = false;
  /// In the loop's read_poller (plain sessions; in the same padding).
  bool read_watched_ = false;
  /// Why it is closing (set by begin_close, with close_reason_).
  close_cause closing_cause_ = close_cause::server;
  unsigned missed_beats_ = 0;
  /// Null while nothing waits to be written. (Next to the state and flags: a delivery reads
  /// them together.)
  std::unique_ptr<net::send_queue> out_;

  /// The unfinished tail of what was read (empty, and holding no memory, between messages).
  std::string pending_;
  /// Bytes of unfinished messages last reported to the loop (client_loop::hold_unfinished);
  /// while not 0, its place in the loop's list of those holding some, oldest first.
  std::size_t unfinished_ = 0;
  client_session* unfinished_older_ = nullptr;
  client_session* unfinished_newer_ = nullptr;
  std::unique_ptr<codec::ws::handshake_parser> handshake_;
  /// Its place among its address's unfinished handshakes (max_handshakes_per_ip); empty once
  /// open or closed.
  handshake_slot handshake_place_;
  std::unique_ptr<codec::ws::frame_parser> frames_;
  /// Why it is closing (set by begin_close).
  std::unique_ptr<std::string> close_reason_;

  std::chrono::steady_clock::time_point last_heard_;
};

/// A client of a TLS listener (wss://, tls+…): a client_session and its TLS connection in one
/// allocation.
class tls_client_session final : public client_session {
 public:
  tls_client_session(client_loop& loop, const listener_config& listener, client_socket socket);

 private:
  friend class client_session;
  net::tls_io io_;
};

}  // namespace gwx::gateway
