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
#include "gateway/client_port.hpp"
#include "gateway/listener_config.hpp"
#include "gateway/outbound.hpp"

namespace gwx::gateway {

class client_record;
class session_events;

/// One client connection on a public listener. Lives on its shard's loop for its whole life;
/// not thread-safe (other threads post to the shard). Moves bytes between the socket and the
/// listener's codec and reports connect, messages and close upward through session_events;
/// what the cluster knows of the client (uid, groups, session, delivery) is in its
/// client_record.
class client_session final : public client_port,
                             public std::enable_shared_from_this<client_session> {
 public:
  client_session(session_events& events, const listener_config& listener,
                 asio::ip::tcp::socket socket);

  /// Starts reading (and, for WebSocket, the handshake timer); `record` is this client's entry
  /// in its directory, handed back with every report until on_closed.
  void start(client_record& record);

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
  void destroy(const std::string& reason) override;
  /// Closes with a reason the client can read: a WebSocket close frame with `ws_code` and
  /// `reason`, then the connection; TCP clients are closed after their queue is flushed.
  void close_with_reason(std::uint16_t ws_code, const std::string& reason) override;
  /// The gateway is shutting down: WebSocket clients get close 1001, TCP clients `goodbye`
  /// (when not empty); then the connection closes once flushed.
  void go_away(const std::string& goodbye);
  /// The worker's answer to an on_websocket_connect that had to be asked.
  void on_connect_decision(std::uint32_t http_status, const std::string& body);

 private:
  void arm_read();
  void on_readable();
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
  void push_control(std::string_view bytes, bool always);
  /// A per-thread buffer to encode one control frame into (cleared).
  static std::string& control_scratch();
  void reject_upgrade(int status, const std::string& body, const char* reason);
  void accept_upgrade();
  void do_write();
  void fail(std::uint16_t ws_code, const std::string& reason);
  void finish(const std::string& reason);
  /// Enters `closing`: finish once the queue is flushed, or after a bounded linger.
  void begin_close(std::string reason);
  void arm_timer();
  std::chrono::milliseconds tick_period() const;
  void on_tick();

  session_events& events_;
  client_record* record_ = nullptr;
  const listener_config& listener_;
  asio::ip::tcp::socket socket_;
  asio::steady_timer timer_;
  client_state state_ = client_state::handshake;

  /// The unfinished tail of what was read (empty, and holding no memory, between messages).
  std::string pending_;
  std::unique_ptr<codec::ws::handshake_parser> handshake_;
  std::unique_ptr<codec::ws::frame_parser> frames_;
  net::send_queue out_;
  bool reading_ = false;
  bool paused_ = false;
  bool close_after_flush_ = false;
  std::string close_reason_;

  std::chrono::steady_clock::time_point started_;
  std::chrono::steady_clock::time_point last_heard_;
  unsigned missed_beats_ = 0;
};

}  // namespace gwx::gateway
