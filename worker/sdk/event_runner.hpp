#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_set>

#include "common/cluster/gateway_api.hpp"
#include "common/cluster/transport.hpp"
#include "common/link/client_info_cache.hpp"
#include "common/logging.hpp"
#include "gwx/link/v2/link.pb.h"
#include "worker/sdk/handler.hpp"
#include "worker/sdk/session_tracker.hpp"

namespace gwx::sdk {

/// One client event as a handler thread runs it, with its client's info. Queued events live in
/// slots that are reused, so their strings keep their capacity from one event to the next.
struct client_event {
  cluster::link_ref link;
  std::uint64_t event_id = 0;
  link::v2::EventKind kind = link::v2::EVENT_KIND_UNSPECIFIED;
  bool redelivered = false;
  bool binary = false;
  std::string payload;
  client_info client;
  session_map session;
  std::uint64_t session_seq = 0;
  /// CONNECT only: the event itself, for its upgrade request, TLS info and decision_required.
  std::unique_ptr<link::v2::ClientEvent> connect;

  /// Takes `event` (moved from when it is a CONNECT) with `payload` and the info of its
  /// client (null: only event.client_id() is known).
  void assign(const cluster::link_ref& from, link::v2::ClientEvent& event,
              std::string_view message_bytes, const link_clients::client_view* info);
};

/// Where an event_runner puts what goes back on the link an event came from.
class event_sink {
 public:
  virtual ~event_sink() = default;
  /// Answers a CONNECT that waits for a decision.
  virtual void decide(const cluster::link_ref& link, link::v2::ConnectDecision decision) = 0;
  /// Acknowledges a handled event (batched by the sink).
  virtual void ack(const cluster::link_ref& link, std::uint64_t event_id) = 0;
};

/// Turns one ClientEvent into handler calls: builds the context, shows the handler the
/// session it wrote until the gateway has it, writes changes back (merge + writer_seq),
/// answers connect decisions and acknowledges every event, whatever the handler did.
/// Not thread-safe: one runner per handler thread (a client's events always reach the same).
class event_runner {
 public:
  /// `writer_seq` is shared by all runners of a worker: every write-back gets a fresh number.
  event_runner(handler& app, gateway_api& api, cluster::transport& transport,
               std::atomic<std::uint64_t>& writer_seq);

  /// Handles `event` (its strings may be swapped with others: the slot stays reusable).
  void run(client_event& event, event_sink& sink);
  /// Handles `event`, whose client info it carries (its payload in the payload field).
  void run(const cluster::link_ref& link, link::v2::ClientEvent& event, event_sink& sink);

  /// The link `link` went down: forgets the session writes made for its events.
  void link_lost(const cluster::link_ref& link) { sessions_.forget_link(link.serial); }

  /// Clients whose session write the gateway has not confirmed yet.
  std::size_t pending_sessions() const { return sessions_.size(); }

 private:
  bool on_connect(client_event& event, event_sink& sink);
  void remember_rejected(const std::string& client_id);
  /// Counts a handler's failure and logs describe() (text built only then) when a line is due:
  /// one per interval with the count since the last one.
  template <typename Describe>
  void log_failure(const Describe& describe);

  handler& app_;
  gateway_api& api_;
  cluster::transport& transport_;
  std::atomic<std::uint64_t>& writer_seq_;
  // One context for every event: its strings keep their capacity (a handler's context is
  // valid only during the call, and one runner runs one event at a time).
  context ctx_;
  session_tracker sessions_;
  // Clients whose upgrade the handler refused: their CLOSE must not reach on_close. Bounded,
  // oldest forgotten first, in case a gateway sends no CLOSE for them.
  std::unordered_set<std::string> rejected_;
  std::deque<std::string> rejected_order_;
  log_throttle failure_log_;
};

}  // namespace gwx::sdk
