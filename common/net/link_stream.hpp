#pragma once

#include <asio.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "common/link/link_codec.hpp"
#include "common/logging.hpp"
#include "common/net/send_queue.hpp"
#include "common/net/tls_context.hpp"
#include "gwx/link/v2/link.pb.h"

namespace gwx {

namespace net {
class tls_io;
}

/// One gateway <-> peer link over TCP, in the link wire format (common/link/link_codec.hpp):
/// preamble, then frames of a protobuf header and raw payload bytes, both ways. Frames sent
/// while a write is in flight are coalesced and leave in one write. Answers Ping with Pong
/// itself and, with keepalive on, closes a peer that stays silent too long.
///
/// Memory is bounded both ways: until authenticated() only tiny frames are accepted, then the
/// configured limits; the outgoing queue is capped in bytes, and a peer that stops reading
/// until the cap is reached is cut (a link cannot skip frames). The read buffer returns to its
/// small size once a large frame has been handled.
///
/// With an SSL object (a link TLS context's new_ssl()) the link runs over TLS: the handshake
/// first, then the same preamble and frames inside it. TLS is a separately allocated layer that a
/// plain link does not have: its reads and writes take the same path as before, one branch per
/// socket operation. A TLS end that receives a plain link's preamble refuses it; a TLS server
/// (the gateway) tells such a peer why, in the clear, with a Reject frame it understands. The
/// first TLS link makes the process ignore SIGPIPE unless it has a handler of its own (OpenSSL
/// writes to the socket itself; a peer that vanished must not end the process).
///
/// Not thread-safe: every call must be made on the stream's executor (post to it from
/// elsewhere). Callbacks run on that executor.
class link_stream : public std::enable_shared_from_this<link_stream> {
 public:
  /// Largest frame accepted from the peer by default (a client message plus envelope).
  static constexpr std::size_t k_default_max_frame = 64 * 1024 * 1024;
  /// Most bytes queued towards the peer by default before the link is cut.
  static constexpr std::size_t k_default_send_cap = 256 * 1024 * 1024;

  /// A frame arrived: its header and its payload (a view valid during the call only).
  using frame_handler = std::function<void(link::v2::Frame& frame, std::string_view payload)>;
  /// Called once when the link ends, with a human-readable reason.
  using close_handler = std::function<void(const std::string& reason)>;

  /// `max_frame` applies once authenticated(); `send_cap` bounds the outgoing queue. `tls`: run
  /// the link over TLS with this SSL object (server or client mode set by its context); null:
  /// plain.
  explicit link_stream(asio::ip::tcp::socket socket, std::size_t max_frame = k_default_max_frame,
                       std::size_t send_cap = k_default_send_cap, net::ssl_ptr tls = nullptr);
  ~link_stream();
  link_stream(const link_stream&) = delete;
  link_stream& operator=(const link_stream&) = delete;

  /// Sends the preamble and starts reading. Handlers are dropped after the close handler ran
  /// (breaks owner cycles).
  void start(frame_handler on_frame, close_handler on_close);

  /// The handshake is over: accept frames up to the configured limit from now on.
  void authenticated();

  /// Sends a ping every `interval` and closes the link when nothing arrived for `timeout`.
  void enable_keepalive(std::chrono::milliseconds interval, std::chrono::milliseconds timeout);

  /// Queues one frame (header + payload); it goes out with whatever else is pending.
  /// backpressured: past the high-water mark (producers should hold back); dropped: the link
  /// is being cut because the peer stopped reading, or the frame alone is over the link's
  /// frame limit (the peer would cut the link on it): such a frame is not sent, the link stays
  /// up, and it is counted and logged (a line every 10 s at most).
  net::send_status send(const link::v2::Frame& frame, std::string_view payload = {});

  /// Queues a send_to_clients command to one client (link_codec::encode_send_to_client): the
  /// same frame send() queues for that command, without building it.
  net::send_status send_to_client(std::string_view client_id, bool binary,
                                  std::string_view payload);

  /// Queues a frame already encoded in the wire format (link_codec::encode).
  net::send_status send_encoded(std::string_view wire);

  /// Closes the socket after flushing what is queued (bounded by a short timer).
  void close(const std::string& reason);

  /// Stops (true) or resumes (false) delivering frames from the peer, so that TCP backpressure
  /// reaches it while the owner cannot take more. A read in flight still delivers its frames.
  /// While paused, with keepalive on, each keepalive tick takes what the peer sent into the read
  /// buffer without handling it (256 KiB at most), so a peer that goes silent (no pongs, no
  /// bytes) is still closed after the keepalive timeout; once that much waits unhandled, the
  /// peer cannot send more and its silence does not count. Resuming handles what was read
  /// ahead, then reads, from a task of its own, never inside the caller.
  void pause_reading(bool paused);
  /// Whether reading is paused.
  bool reading_paused() const { return read_paused_; }

  /// Forgets the handlers without closing: for an owner whose event loop has ended, since an
  /// open stream's handlers keep their owner (and so the stream) alive. No callback runs.
  void drop_handlers();

  bool is_open() const { return open_; }
  /// Whether the link runs over TLS.
  bool tls() const { return tls_ != nullptr; }
  /// Past the outgoing high-water mark.
  bool backpressured() const { return out_.over_high_water(); }
  /// Bytes queued and not yet written.
  std::size_t queued_bytes() const { return out_.bytes(); }
  /// Bytes allocated for reading (what a large frame left behind is given back).
  std::size_t read_buffer_bytes() const { return read_buf_.size(); }
  std::string remote_address() const { return remote_; }
  /// Frames not sent for being over the link's frame limit.
  std::uint64_t frames_too_large() const { return too_large_.total(); }
  asio::any_io_executor get_executor() { return socket_.get_executor(); }

 private:
  struct tls_layer;

  /// Queues `size` bytes that `encode` appends to the string it is given.
  template <class Encode>
  net::send_status queue(std::size_t size, const Encode& encode);

  /// True (counted, logged now and then) when a frame of `size` bytes is over the frame limit.
  bool over_frame_limit(std::size_t size);
  void do_read();
  void on_read(std::size_t n);
  /// Room for at least a quarter chunk after read_len_ (and a large buffer given back once
  /// empty).
  void prepare_read_space();
  /// Decodes every whole frame in the read buffer; false when the link closed meanwhile.
  bool consume();
  /// Paused: takes what the peer sent, without handling it, into the read buffer (up to
  /// k_held_read_ahead bytes); false when the link closed meanwhile.
  bool read_ahead();
  void do_write();
  /// Starts a write once the handler running now returns, unless one is in flight or already
  /// due: every frame queued meanwhile (a read's worth of events, replies and acks) leaves in
  /// that one write. Writing at once would send the first frame alone and the rest after it.
  void write_soon();
  /// The send queue is empty: gives its memory back and finishes a pending close.
  void on_drained();
  void do_keepalive();
  void shutdown(const std::string& reason);

  // TLS only.
  void tls_wait(asio::socket_base::wait_type what);
  void tls_on_ready();
  bool tls_handshake();
  void tls_write();
  void tls_refuse_plain_peer(std::string_view first_bytes);

  asio::ip::tcp::socket socket_;
  asio::steady_timer timer_;
  link_codec::limits limits_;
  log_throttle too_large_;
  link_codec::limits active_limits_ = link_codec::k_handshake_limits;
  std::size_t idle_spare_ = 0;  // send buffer kept while idle (once authenticated: a batch)
  std::string remote_;
  std::string read_buf_;
  std::size_t read_len_ = 0;
  bool preamble_seen_ = false;
  bool read_paused_ = false;
  // No read in flight because reading is paused: resuming starts one.
  bool read_parked_ = false;
  net::send_queue out_;
  link::v2::Frame frame_;
  bool open_ = true;
  bool closing_ = false;
  bool write_due_ = false;  // write_soon() posted a write that has not started yet
  std::string close_reason_;
  frame_handler on_frame_;
  close_handler on_close_;
  std::chrono::milliseconds ka_interval_{0};
  std::chrono::milliseconds ka_timeout_{0};
  std::chrono::steady_clock::time_point last_heard_;
  std::uint64_t ping_seq_ = 0;
  std::unique_ptr<tls_layer> tls_;
};

}  // namespace gwx
