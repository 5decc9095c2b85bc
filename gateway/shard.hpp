#pragma once

#include <asio.hpp>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "gateway/client_directory.hpp"
#include "gateway/client_loop.hpp"
#include "gateway/client_session.hpp"
#include "gateway/command_executor.hpp"
#include "gateway/event_router.hpp"
#include "gateway/session_events.hpp"
#include "gwx/link/v2/link.pb.h"

namespace gwx::gateway {

class gateway_server;
class worker_link;

/// A worker link as the gateway's worker set lists it.
struct worker_ref {
  std::uint64_t id = 0;
  std::shared_ptr<worker_link> link;
  /// Draining: gets no new clients; its clients move on once it acknowledged their events.
  bool draining = false;
};

/// What one event loop owns, as glue around its socket-free parts: the client_directory
/// (clients, uid and group indices, queries), the event_router (workers, delivery, acks,
/// queues) and the command_executor. Accepts sockets into client_sessions and hears from
/// them through session_events. Every method runs on the shard's loop (others post to io());
/// no locks.
class shard final : public session_events, private membership_listener {
 public:
  shard(gateway_server& server, unsigned index, asio::io_context& io);
  /// How this shard's client writes reach the kernel (its reads go the same way).
  const net::batched_io& client_writes() const { return loop_.sender(); }

  asio::io_context& io() { return io_; }
  unsigned index() const { return index_; }

  /// A new client accepted on `listener`; the socket already belongs to this loop. `place`
  /// (its address's count of unfinished handshakes) goes to its session, which gives it back
  /// once the handshake is over or the connection closes. `remote`: the client's address, as
  /// the accept gave it.
  void accept(const listener_config& listener, client_socket socket, handshake_slot place,
              const asio::ip::tcp::endpoint& remote);

  void on_connected(client_record& c, const codec::ws::http_request* request,
                    bool decision_required) override;
  void on_message(client_record& c, std::string_view payload, bool binary) override;
  void on_closed(client_record& c, close_cause cause, const std::string& reason) override;

  /// Replaces this shard's copy of the worker set: events a vanished worker did not
  /// acknowledge go to another worker (flagged redelivered), queued events go out. A set
  /// published before the one applied last is ignored (see event_router::set_workers).
  void set_workers(std::uint64_t version, const std::vector<worker_ref>& workers);

  /// Acknowledgements from a worker for events of this shard's clients.
  void on_acks(const std::vector<std::uint64_t>& event_ids);

  /// Starts the periodic check of queued events' age.
  void start();

  /// What is left to do before this shard can stop.
  struct drain_state {
    std::size_t open_sockets = 0;
    std::size_t pending_events = 0;  ///< queued or unacknowledged
  };
  /// Stops taking client input and says goodbye to every client.
  void shutdown(const std::string& goodbye);
  drain_state remaining() const;
  bool has_workers() const { return router_.has_workers(); }

  /// The shard an event id belongs to.
  static unsigned shard_of_event(std::uint64_t event_id) {
    return event_router::loop_of_event(event_id);
  }

  /// Runs one command from a link (already routed to this shard). Returns the partial reply
  /// for queries; writes return an empty error or "offline".
  void execute(const link::v2::Command& cmd, std::string_view message, link::v2::Reply& reply) {
    executor_.execute(cmd, message, reply);
  }

  /// A worker's answer to a client's upgrade that waits for one (ignored when it is gone).
  void decide(const std::string& client_id, std::uint32_t http_status, const std::string& body);

  event_counts events() const { return router_.counts(); }

 private:
  void sweep();
  // membership_listener: routed bus bindings follow what this loop's clients hold.
  void on_first_holder(key_kind kind, const std::string& name) override;
  void on_last_holder(key_kind kind, const std::string& name) override;

  gateway_server& server_;
  unsigned index_;
  asio::io_context& io_;
  std::uint64_t next_connection_ = 1;
  std::uint64_t messages_in_ = 0;
  /// Before the clients: their sessions hook into its timer wheel.
  client_loop loop_;
  client_directory clients_;
  event_router router_;
  command_executor executor_;
  asio::steady_timer sweep_timer_;
};

}  // namespace gwx::gateway
