#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "common/logging.hpp"
#include "gateway/client_directory.hpp"
#include "gateway/gateway_metrics.hpp"
#include "gwx/link/v2/link.pb.h"

namespace gwx::gateway {

/// The client_id a single-client command names (its holder's loop runs it), or null for
/// commands every loop runs.
const std::string* command_target(const link::v2::Command& cmd);

/// Runs link commands against one loop's client_directory: sends through each client's port
/// (a broadcast is framed once per listener kind), applies membership, session and close
/// commands, answers queries. No sockets; one loop only, not thread-safe.
class command_executor {
 public:
  /// Adds what the directory does not know (messages in, event counts) to a STATS answer.
  using stats_filler = std::function<void(link::v2::GatewayStats&)>;

  explicit command_executor(client_directory& clients, stats_filler fill_stats = {},
                            const event_metrics& metrics = {});

  /// Runs one command already routed to this loop and fills this loop's part of the reply:
  /// the result of a query; "offline" when a write found none of its clients here.
  void execute(const link::v2::Command& cmd, link::v2::Reply& reply);
  /// The same, with the message (of a send, or a close's final message) given apart: as it
  /// arrives on the link, a view of the frame's payload.
  void execute(const link::v2::Command& cmd, std::string_view message, link::v2::Reply& reply);

  /// Messages queued for clients so far.
  std::uint64_t messages_out() const { return messages_out_; }
  /// Uid, session and group writes refused so far (over k_max_client_info_bytes, or the
  /// client's group bounds).
  std::uint64_t writes_refused() const { return refusals_.total(); }

 private:
  // Answers a refused write with why, counts it and logs it (a line every 10 s at most).
  void refuse(const client_record& c, const char* what, const std::string& why,
              const metrics::counter& counted, link::v2::Reply& reply);

  client_directory& clients_;
  stats_filler fill_stats_;
  std::uint64_t messages_out_ = 0;
  log_throttle refusals_;
  metrics::counter refused_uid_session_;
  metrics::counter refused_groups_;
};

}  // namespace gwx::gateway
