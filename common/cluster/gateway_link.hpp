#pragma once

#include <asio.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/cluster/transport.hpp"
#include "common/link/client_info_cache.hpp"
#include "common/link/link_handshake.hpp"
#include "common/net/link_stream.hpp"
#include "common/registry/backoff.hpp"
#include "common/registry/gateway_watcher.hpp"
#include "gwx/link/v2/link.pb.h"

namespace gwx::cluster {

/// How a peer links to gateways; shared by all links of one process.
struct link_settings {
  std::string secret;
  /// Shown in the gateway's stats and logs.
  std::string name;
  link::v2::PeerRole role = link::v2::PEER_ROLE_WORKER;
  std::chrono::milliseconds handshake_timeout{5000};
  std::chrono::milliseconds keepalive_interval{1000};
  std::chrono::milliseconds keepalive_timeout{5000};
  std::chrono::milliseconds backoff_initial{100};
  std::chrono::milliseconds backoff_max{5000};
  /// Largest frame accepted from a gateway.
  std::size_t max_frame = link_stream::k_default_max_frame;
  /// Most bytes queued towards one gateway before its link is cut (it stopped reading).
  std::size_t send_cap = link_stream::k_default_send_cap;
  /// TLS client context for the links (the gateways must use TLS links too); null: plain.
  std::shared_ptr<net::tls_context> tls;
};

/// The peer side of the link to one gateway: connects, answers the challenge, checks the
/// gateway's proof, then carries frames both ways; after a failure or loss it reconnects with
/// exponential backoff and jitter until stop(). Logs one line when the link comes up and one
/// when it goes down (never the secret).
///
/// Not thread-safe: lives on the network io_context; every call and callback happens there.
class gateway_link : public std::enable_shared_from_this<gateway_link> {
 public:
  struct callbacks {
    /// The handshake succeeded.
    std::function<void(gateway_link&)> on_up;
    /// A link that was up is gone (a reconnect follows unless stopped). Never called from
    /// inside send(): a send that cuts the link (the gateway stopped reading) leaves the link
    /// not up at once and reports it from a task of its own.
    std::function<void(gateway_link&, const std::string& reason)> on_down;
    /// A frame arrived on a link that is up (Ping/Pong are handled below); `payload` is valid
    /// during the call only.
    std::function<void(gateway_link&, link::v2::Frame&, std::string_view payload)> on_frame;
  };

  gateway_link(asio::io_context& io, registry::gateway_entry entry,
               std::shared_ptr<const link_settings> settings, callbacks cb);

  /// Starts connecting.
  void start();
  /// Closes the link after flushing what is queued; no reconnect follows. No callbacks after,
  /// but for the on_down of a link a send had already cut (the owner must hear it went down).
  void stop();

  /// Queues a frame (header and payload); dropped unless the link is up, and when it is over
  /// the link's frame limit (link_stream::send).
  net::send_status send(const link::v2::Frame& frame, std::string_view payload = {});
  /// Queues a send_to_clients command to one client (link_stream::send_to_client); dropped
  /// unless the link is up.
  void send_to_client(std::string_view client_id, bool binary, std::string_view payload);

  bool is_up() const { return state_ == state::up; }
  const registry::gateway_entry& entry() const { return entry_; }
  /// The gateway's advertised internal address (from its Welcome once linked).
  const std::string& address() const { return address_; }
  const std::string& gateway_id() const { return entry_.gateway_id; }
  /// What the client_ids this gateway issues start with (its address and epoch); set once up.
  const std::string& id_prefix() const { return id_prefix_; }
  /// Whether the gateway said in its Welcome that it hands the events this link did not
  /// acknowledge to another worker when the link goes down (at-least-once); set once up.
  bool gateway_redelivers() const { return redelivers_; }
  /// Unique per established link in this process; changes on every reconnect.
  std::uint64_t serial() const { return serial_; }
  /// This link as commands and acks name it (gateway_id and serial).
  const link_ref& ref() const { return ref_; }
  /// Stops (true) or resumes reading the link because its owner holds too many of the events
  /// it sent (TCP backpressure then reaches the gateway). Kept across reconnects. While a
  /// request is outstanding on the link it is read anyway: the answer comes behind the events
  /// the gateway queued before it, and a handler may be blocked waiting for it.
  void hold_events(bool hold);
  /// A request went out on the link and waits for its answer.
  void request_sent();
  /// A request sent on the link with serial `serial` was answered or given up.
  void request_ended(std::uint64_t serial);
  /// Whether reading is paused now (held, and no request outstanding).
  bool reading_paused() const { return stream_ && stream_->reading_paused(); }

  /// Bytes queued on the link and not yet written.
  std::size_t queued_bytes() const;
  /// What this link told of the clients it sends events of; emptied when the link goes down
  /// or comes up.
  link_clients::client_info_cache& clients() { return clients_; }

  /// Takes new registry details (listeners, name) of the same gateway.
  void update_entry(registry::gateway_entry entry) { entry_ = std::move(entry); }

 private:
  enum class state { idle, connecting, handshaking, up, waiting, stopped };

  void connect();
  void on_connected(asio::ip::tcp::socket socket);
  void on_handshake_frame(link::v2::Frame& frame);
  void on_stream_closed(const std::string& reason);
  /// Tells the owner the link went down, then schedules the reconnect.
  void report_down(const std::string& reason);
  void fail(const std::string& reason);
  void retry_later();
  /// Pauses or resumes the stream's reads as hold_ and requests_ say.
  void apply_hold();

  asio::io_context& io_;
  registry::gateway_entry entry_;
  std::shared_ptr<const link_settings> settings_;
  callbacks cb_;
  asio::ip::tcp::resolver resolver_;
  asio::steady_timer timer_;
  registry::backoff backoff_;
  std::shared_ptr<asio::ip::tcp::socket> connecting_;
  std::shared_ptr<link_stream> stream_;
  state state_ = state::idle;
  // Bumped on every attempt and state change so stale async completions are ignored.
  std::uint64_t attempt_ = 0;
  // Inside send() / send_to_client(): a close it causes is reported after it returns.
  bool sending_ = false;
  std::string address_;
  std::string id_prefix_;
  bool redelivers_ = false;
  std::optional<link_handshake::peer_side> handshake_;
  std::uint64_t serial_ = 0;
  link_ref ref_;
  // Failures since the last success.
  unsigned failures_ = 0;
  /// The reasons warned about in this streak of failures (a few at most: once each, so a
  /// failure whose wording alternates between two reasons is not logged at every retry).
  std::vector<std::string> warned_failures_;
  link_clients::client_info_cache clients_;
  bool hold_ = false;
  // Requests sent on this link (this serial) and not answered or given up yet.
  std::size_t requests_ = 0;
};

}  // namespace gwx::cluster
