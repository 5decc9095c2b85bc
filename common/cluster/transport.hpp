#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "common/client_id.hpp"
#include "common/cluster/types.hpp"
#include "gwx/link/v2/link.pb.h"

namespace gwx::cluster {

/// A client_id parsed once, ready to be matched against many gateways. A value type.
struct client_target {
  /// Parses `client_id`; an unparsable id matches no gateway.
  explicit client_target(std::string_view client_id);

  std::string client_id;
  std::optional<client_id_parts> parts;
  /// Hex of the epoch: equals the gateway_id of the gateway that issued the id.
  std::string gateway_id;
};

/// Names one established link: the gateway and the serial of this connection to it (a
/// reconnect makes a new serial, so frames meant for an old connection are dropped).
struct link_ref {
  std::string gateway_id;
  std::uint64_t serial = 0;
};

/// One gateway as the router sees it while building per-gateway commands.
struct gateway_view {
  const std::string& gateway_id;
  /// The address the gateway advertises (from its Welcome once linked).
  const std::string& internal_address;
  bool linked = false;

  /// True when `target` names a client of this gateway (same address and epoch).
  bool holds(const client_target& target) const;
};

/// Fills the command for one gateway; returns false to leave that gateway out. Runs on the
/// network thread.
using command_builder = std::function<bool(const gateway_view&, link::v2::Command&)>;

/// One gateway's answer to a request.
struct gateway_reply {
  std::string gateway_address;
  link::v2::Reply reply;
};

/// Everything a request gathered: the replies, and the gateways it was meant for that did not
/// answer (not linked, link lost, timed out, or answered with an error).
struct gather_result {
  std::vector<gateway_reply> replies;
  std::vector<std::string> missing_gateways;
  /// The gateways among `missing_gateways` that did answer, but with an error.
  std::vector<gateway_reply> errors;
  std::error_code error;
};

/// Called exactly once per request, on the network thread.
using gather_handler = std::function<void(gather_result)>;

/// Where gwx::gateway_api sends its commands: the links to every gateway (cluster_core) or, in
/// tests, an in-memory fake. Implementations are thread-safe: every member may be called from
/// any thread, and commands issued by one thread reach each gateway in the order issued.
class transport {
 public:
  virtual ~transport() = default;

  /// Queues `cmd` for the linked gateway holding `client_id`; dropped when there is none.
  virtual void send_to_holder(std::string client_id, link::v2::Command cmd) = 0;

  /// Queues `msg` for the client `client_id` (a SendToClients command to its holder). An
  /// implementation may encode it without building the command.
  virtual void send_to_client(std::string_view client_id, message&& msg) {
    link::v2::Command cmd;
    auto* op = cmd.mutable_send_to_clients();
    op->add_client_ids(std::string(client_id));
    op->mutable_message()->set_data(std::move(msg.data));
    op->mutable_message()->set_binary(msg.binary);
    send_to_holder(std::string(client_id), std::move(cmd));
  }
  /// The same for a message the caller keeps: an implementation that encodes it at once needs
  /// no copy of it; this default copies it.
  virtual void send_to_client(std::string_view client_id, const message& msg) {
    send_to_client(client_id, message(msg));
  }

  /// Queues the same `cmd` for every linked gateway.
  virtual void send_to_all(link::v2::Command cmd) = 0;

  /// Queues, for every linked gateway, the command `build` makes for it (if any).
  virtual void send_each(command_builder build) = 0;

  /// Sends to every known gateway the request `build` makes for it and calls `done` once all
  /// of them answered or `timeout` passed; gateways not linked count as missing at once.
  virtual void request_each(command_builder build, std::chrono::milliseconds timeout,
                            gather_handler done) = 0;

  /// The timeout used when a call passes zero.
  virtual std::chrono::milliseconds default_timeout() const = 0;

  /// True on the thread that delivers answers: a blocking wait there would never end.
  virtual bool on_network_thread() const = 0;

  /// True once stopped: nothing is sent any more and requests fail with api_errc::stopped.
  virtual bool stopped() const = 0;

  /// On the thread that delivers answers: keeps delivering until `done()` or the deadline,
  /// so a blocking call there can wait. False when the deadline passed first, or when this
  /// transport cannot do that (then a blocking call there fails with would_deadlock).
  virtual bool run_until(const std::function<bool()>& done,
                         std::chrono::steady_clock::time_point deadline) {
    (void)done;
    (void)deadline;
    return false;
  }
  /// Whether run_until() is supported.
  virtual bool can_run_nested() const { return false; }

  /// True when writes should come whole (every client_id of a send in one command, given to
  /// send_to_all) rather than split per gateway with send_each(): the push bus publishes the
  /// command once and each gateway applies it to its own clients.
  virtual bool takes_whole_commands() const { return false; }
};

}  // namespace gwx::cluster
