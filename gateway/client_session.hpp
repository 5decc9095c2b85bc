#pragma once

#include <asio.hpp>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/codec/ws_frame.hpp"
#include "common/codec/ws_handshake.hpp"
#include "gateway/event_fifo.hpp"
#include "gateway/listener_config.hpp"
#include "gateway/outbound.hpp"
#include "gwx/link/v1/link.pb.h"

namespace gwx::gateway {

class shard;

/// A client event as built once and shared by the shard (until acknowledged) and the link.
using event_ptr = std::shared_ptr<const link::v1::Frame>;

/// An event sent to a worker, waiting for its acknowledgement.
struct sent_event {
  event_ptr frame;
  std::chrono::steady_clock::time_point sent;
};

/// An event waiting for a worker.
struct held_event {
  event_ptr frame;
  std::size_t bytes = 0;
  std::chrono::steady_clock::time_point since;
};

/// One client connection on a public listener. Lives on its shard's loop for its whole life;
/// not thread-safe (other threads post to the shard). Moves bytes between the socket and the
/// listener's codec; membership (uid, groups) and the session map are kept here and indexed by
/// the shard.
class client_session : public std::enable_shared_from_this<client_session> {
 public:
  enum class state : std::uint8_t { handshake, deciding, open, closing, closed };

  client_session(shard& owner, const listener_config& listener, asio::ip::tcp::socket socket,
                 std::uint64_t connection, std::string client_id);

  /// Starts reading (and, for WebSocket, the handshake timer).
  void start();

  /// Queues encoded bytes; applies the listener's slow-client policy. False if not queued.
  bool send(const wire_bytes& bytes);
  /// Sends `final_message` (if any), then closes gracefully (WebSocket close 1000).
  void close_gracefully(const std::optional<std::pair<std::string, bool>>& final_message);
  /// Closes at once, dropping anything queued.
  void destroy(const std::string& reason);
  /// Closes with a reason the client can read: a WebSocket close frame with `ws_code` and
  /// `reason`, then the connection; TCP clients are closed after their queue is flushed.
  void close_with_reason(std::uint16_t ws_code, const std::string& reason);
  /// The gateway is shutting down: WebSocket clients get close 1001, TCP clients `goodbye`
  /// (when not empty); then the connection closes once flushed.
  void go_away(const std::string& goodbye);
  /// The worker's answer to an on_websocket_connect that had to be asked.
  void on_connect_decision(std::uint32_t http_status, const std::string& body);

  std::uint64_t connection() const { return connection_; }
  const std::string& id() const { return id_; }
  const listener_config& listener() const { return listener_; }
  state current_state() const { return state_; }
  const std::string& remote_ip() const { return remote_ip_; }
  std::uint16_t remote_port() const { return remote_port_; }

  // Membership and session, maintained by the shard.
  std::string uid;
  std::vector<std::string> groups;  ///< sorted
  std::map<std::string, std::string> session;
  std::uint64_t session_seq = 0;
  std::uint64_t worker_id = 0;  ///< sticky worker link, 0: none yet
  /// Sent to `worker_id` and not acknowledged yet (at-least-once), oldest first.
  event_fifo<sent_event> unacked;
  /// Waiting for a worker (none linked, or the previous one still finishing), oldest first.
  event_fifo<held_event> held;
  std::size_t held_bytes = 0;
  /// Per-client part of event ids (wraps; only compared for equality).
  std::uint16_t next_event_seq = 0;
  /// The worker has been told of this client (CONNECT sent); it will hear of its close.
  bool announced = false;

  /// Reachable by commands: announced and neither closing nor closed.
  bool addressable() const {
    return announced && (state_ == state::open || state_ == state::deciding);
  }

 private:
  void do_read();
  void on_read(std::size_t n);
  bool handle_handshake();
  bool handle_websocket();
  bool handle_stream();
  void deliver(std::string_view payload, bool binary);
  void reject_upgrade(int status, const std::string& body, const char* reason);
  void accept_upgrade();
  void do_write();
  void fail(std::uint16_t ws_code, const std::string& reason);
  void finish(const std::string& reason);
  void push(const wire_bytes& bytes);
  /// Enters `closing`: finish once the queue is flushed, or after a bounded linger.
  void begin_close(std::string reason);
  void arm_timer();
  std::chrono::milliseconds tick_period() const;
  void on_tick();

  shard& shard_;
  const listener_config& listener_;
  asio::ip::tcp::socket socket_;
  asio::steady_timer timer_;
  std::uint64_t connection_;
  std::string id_;
  std::string remote_ip_;
  std::uint16_t remote_port_ = 0;
  state state_ = state::handshake;

  std::string read_buf_;
  std::size_t read_len_ = 0;
  std::unique_ptr<codec::ws::handshake_parser> handshake_;
  std::unique_ptr<codec::ws::frame_parser> frames_;

  std::vector<wire_bytes> queue_;
  std::size_t queue_head_ = 0;
  std::size_t queued_bytes_ = 0;
  std::vector<asio::const_buffer> write_bufs_;
  std::size_t writing_count_ = 0;
  bool writing_ = false;
  bool close_after_flush_ = false;
  std::string close_reason_;

  std::chrono::steady_clock::time_point started_;
  std::chrono::steady_clock::time_point last_heard_;
  unsigned missed_beats_ = 0;
};

}  // namespace gwx::gateway
