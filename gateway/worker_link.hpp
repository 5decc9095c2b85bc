#pragma once

#include <asio.hpp>
#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/link/link_handshake.hpp"
#include "common/logging.hpp"
#include "common/metrics/counter.hpp"
#include "common/net/link_stream.hpp"
#include "gateway/client_event.hpp"
#include "gwx/link/v2/link.pb.h"

namespace gwx::gateway {

class gateway_server;
struct gather_state;

/// The gateway's side of one link to a worker or push client. Lives on one loop; not
/// thread-safe (shards post to its loop). Authenticates the peer by challenge-response, then
/// carries client events out and commands in; commands fan out to the shards that hold the
/// clients they name, and queries gather every shard's part before one reply goes back.
class worker_link : public std::enable_shared_from_this<worker_link> {
 public:
  worker_link(gateway_server& server, unsigned loop, std::uint64_t id,
              asio::ip::tcp::socket socket);

  void start();
  /// Queues a client event (must be called on this link's loop).
  void send_event(const event_ptr& frame);
  /// Sends a client's ClientInfo frame (from the link's loop), ahead of that client's event.
  void send_client_info(const event_ptr& frame);
  /// Breaks the link's cycle with its stream once the loops have ended (gateway_server::stop):
  /// an open link is freed with its loop's pending work instead of never.
  void detach_stream();
  /// Asks the worker to drain (must be called on this link's loop).
  void request_drain(const std::string& reason);
  /// Queues any frame (must be called on this link's loop).
  void send(const link::v2::Frame& frame);

  /// The link's send queue is past its high-water mark (readable from any loop).
  bool backpressured() const { return congested_.load(std::memory_order_relaxed); }

  unsigned loop() const { return loop_; }
  std::uint64_t id() const { return id_; }
  const std::string& name() const { return name_; }
  /// The worker's end of the link, host:port.
  std::string remote_address() const;

 private:
  void on_frame(link::v2::Frame& frame, std::string_view payload);
  void on_handshake(const link::v2::Frame& frame);
  void on_command(link::v2::Command& cmd, std::string_view message);
  void on_decision(const link::v2::ConnectDecision& d);
  void on_closed(const std::string& reason);
  void on_acks(const link::v2::EventAck& ack);
  void on_drain();
  void merge(gather_state& state, const link::v2::Reply& part);
  /// While congested, rechecks the send queue until it fell below its high-water mark.
  void watch_congestion();
  void send_wire(const std::string& wire);

  gateway_server& server_;
  unsigned loop_;
  std::uint64_t id_;
  std::shared_ptr<link_stream> stream_;
  asio::steady_timer hello_timer_;
  asio::steady_timer congestion_timer_;
  std::atomic<bool> congested_{false};
  bool watching_congestion_ = false;
  std::optional<link_handshake::gateway_side> handshake_;
  std::string name_;
  link::v2::PeerRole role_ = link::v2::PEER_ROLE_UNSPECIFIED;
  bool authenticated_ = false;
  /// This link's refusal was logged already (its close needs no second line).
  bool refusal_logged_ = false;
  bool draining_ = false;
  std::uint64_t next_event_id_ = 0;
  std::uint64_t events_sent_ = 0;
  std::uint64_t events_acked_ = 0;
  std::vector<std::vector<std::uint64_t>>
      acks_by_shard_;  ///< on_acks()'s lists, on the link's loop
  /// Answers refused for being over the link's frame limit.
  log_throttle answers_too_large_;
  metrics::counter routed_;
};

}  // namespace gwx::gateway
