#pragma once

#include <asio.hpp>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "gateway/client_session.hpp"
#include "gwx/link/v1/link.pb.h"

namespace gwx::gateway {

class gateway_server;
class worker_link;

/// A worker link as one shard sees it.
struct worker_ref {
  std::uint64_t id = 0;
  std::shared_ptr<worker_link> link;
  /// Draining: gets no new clients; its clients move on once it acknowledged their events.
  bool draining = false;
};

/// Event figures of one shard, for stats.
struct event_counts {
  std::uint64_t queued = 0;
  std::uint64_t in_flight = 0;
  std::uint64_t redelivered = 0;
  std::uint64_t dropped = 0;
};

/// Everything one event loop owns: its clients, their uid and group indices, and its copy of
/// the worker set. Every method runs on the shard's loop (others post to io()); no locks.
class shard {
 public:
  shard(gateway_server& server, unsigned index, asio::io_context& io);

  asio::io_context& io() { return io_; }
  unsigned index() const { return index_; }

  /// A new client accepted on `listener`; the socket already belongs to this loop.
  void accept(const listener_config& listener, asio::ip::tcp::socket socket);

  // Called by client_session.
  void on_connected(client_session& c, const codec::ws::http_request* request,
                    bool decision_required);
  void on_message(client_session& c, std::string_view payload, bool binary);
  void on_closed(client_session& c, const std::string& reason);

  /// Replaces this shard's copy of the worker set: events a vanished worker did not
  /// acknowledge go to another worker (flagged redelivered), queued events go out.
  void set_workers(std::vector<worker_ref> workers);

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
  bool has_workers() const { return !workers_.empty(); }

  /// The shard an event id belongs to.
  static unsigned shard_of_event(std::uint64_t event_id) {
    return static_cast<unsigned>(event_id & 0xff);
  }

  /// Runs one command from a link (already routed to this shard). Returns the partial reply
  /// for queries; writes return an empty error or "offline".
  void execute(const link::v1::Command& cmd, link::v1::Reply& reply);

  /// Looks a client up by client_id; null when it is not held here.
  client_session* find(const std::string& client_id);
  /// Like find(), but also returns a client still waiting for its upgrade decision.
  client_session* find_pending(const std::string& client_id);

  event_counts events() const;

 private:
  std::shared_ptr<link::v1::Frame> make_event(client_session& c, link::v1::EventKind kind);
  /// Sends the event to the client's worker, or queues it; false when it had to be queued.
  bool dispatch(client_session& c, event_ptr event);
  /// The worker for the client's next event; null with `wait` set while the previous
  /// (draining) worker still has unacknowledged events of it, null alone when none is linked.
  const worker_ref* pick(client_session& c, bool& wait);
  void send_to(client_session& c, const worker_ref& w, event_ptr event);
  void hold(client_session& c, event_ptr event);
  void flush_held(client_session& c);
  void drop_held(client_session& c, std::size_t count, const char* why);
  /// Removes a closed client once nothing of it awaits delivery.
  void forget_if_done(client_session& c);
  void sweep();
  void warn_queue(const char* what);
  void fill_client(const client_session& c, link::v1::ClientInfo& info) const;
  void join(client_session& c, const std::string& group);
  void leave(client_session& c, const std::string& group);
  /// Removes the client from every group it is in.
  void leave_all(client_session& c);
  void bind(client_session& c, const std::string& uid);
  void unbind(client_session& c);
  void query(const link::v1::Query& q, link::v1::QueryResult& r);
  void warn_no_worker();

  gateway_server& server_;
  unsigned index_;
  asio::io_context& io_;
  std::uint64_t next_connection_ = 1;
  std::unordered_map<std::uint64_t, std::shared_ptr<client_session>> clients_;
  std::unordered_map<std::string, std::unordered_set<client_session*>> groups_;
  std::unordered_map<std::string, std::unordered_set<client_session*>> uids_;
  asio::steady_timer sweep_timer_;
  std::unordered_set<std::uint64_t> waiting_;  ///< connections with held events
  std::uint64_t redelivered_ = 0;
  std::uint64_t dropped_ = 0;
  /// Rate limit per kind of queue warning (keyed by the message's static text), so one kind
  /// never hides another.
  struct warning_state {
    std::uint64_t count = 0;
    std::chrono::steady_clock::time_point last_log{};
  };
  std::unordered_map<const char*, warning_state> queue_warnings_;
  std::vector<worker_ref> workers_;
  std::size_t next_worker_ = 0;
  std::uint64_t messages_in_ = 0;
  std::uint64_t messages_out_ = 0;
  std::uint64_t dropped_no_worker_ = 0;
  std::chrono::steady_clock::time_point last_no_worker_log_{};
};

}  // namespace gwx::gateway
