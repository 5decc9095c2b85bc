#pragma once

#include <asio.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "gwx/link/v1/link.pb.h"

namespace gwx {

/// One gateway <-> peer link over TCP: length-prefixed link.v1.Frame messages in both
/// directions. Frames sent while a write is in flight are appended to one pending buffer and
/// leave in a single write. Answers Ping with Pong itself and, with keepalive on, closes a peer
/// that stays silent too long.
///
/// Not thread-safe: every call must be made on the stream's executor (post to it from
/// elsewhere). Callbacks run on that executor.
class link_stream : public std::enable_shared_from_this<link_stream> {
 public:
  /// Largest frame accepted from the peer by default (a client message plus envelope).
  static constexpr std::size_t k_default_max_frame = 64 * 1024 * 1024;

  using frame_handler = std::function<void(link::v1::Frame&)>;
  /// Called once when the link ends, with a human-readable reason.
  using close_handler = std::function<void(const std::string& reason)>;

  link_stream(asio::ip::tcp::socket socket, std::size_t max_frame = k_default_max_frame);

  /// Starts reading. Handlers are dropped after the close handler ran (breaks owner cycles).
  void start(frame_handler on_frame, close_handler on_close);

  /// Sends a ping every `interval` and closes the link when nothing arrived for `timeout`.
  void enable_keepalive(std::chrono::milliseconds interval, std::chrono::milliseconds timeout);

  /// Queues one frame; it goes out with whatever else is pending.
  void send(const link::v1::Frame& frame);

  /// Closes the socket after flushing what is queued (bounded by a short timer).
  void close(const std::string& reason);

  bool is_open() const { return open_; }
  /// Bytes queued and not yet written.
  std::size_t queued_bytes() const { return pending_.size() + writing_.size(); }
  std::string remote_address() const { return remote_; }
  asio::any_io_executor get_executor() { return socket_.get_executor(); }

 private:
  void do_read();
  void on_read(std::size_t n);
  void do_write();
  void do_keepalive();
  void shutdown(const std::string& reason);

  asio::ip::tcp::socket socket_;
  asio::steady_timer timer_;
  std::size_t max_frame_;
  std::string remote_;
  std::string read_buf_;
  std::size_t read_len_ = 0;
  std::string pending_;
  std::string writing_;
  bool writing_now_ = false;
  bool open_ = true;
  bool closing_ = false;
  std::string close_reason_;
  frame_handler on_frame_;
  close_handler on_close_;
  std::chrono::milliseconds ka_interval_{0};
  std::chrono::milliseconds ka_timeout_{0};
  std::chrono::steady_clock::time_point last_heard_;
  std::uint64_t ping_seq_ = 0;
};

}  // namespace gwx
