#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>

#include "common/cluster/types.hpp"
#include "gwx/link/v2/link.pb.h"

namespace gwx::sdk {

/// Remembers the sessions a handler thread wrote back until the gateway's events show it has
/// applied them (ClientInfo.session_seq >= our writer_seq), so an event already on its way when
/// the handler changed the session still sees the change. A write is only trusted while the
/// link its event came on lasts: one made around a link loss may never have reached the
/// gateway (a write for a gateway that is not linked is dropped), and an event of a later link
/// must not be shown it, or the handler would take its own lost write for applied and never
/// write it again. Not thread-safe: one per handler thread (a client's events always reach the
/// same one).
class session_tracker {
 public:
  /// The session a handler should see for an event stamped `event_seq` that came on the link
  /// `link_serial`: our last written copy while the gateway has not caught up and the link is
  /// the one of that write, else `from_gateway`.
  session_map resolve(const std::string& client_id, std::uint64_t link_serial,
                      std::uint64_t event_seq, session_map from_gateway);

  /// Records that `session` was written back for `client_id` with `writer_seq`, for an event
  /// that came on the link `link_serial`.
  void wrote(const std::string& client_id, std::uint64_t link_serial, std::uint64_t writer_seq,
             session_map session);

  /// Drops what is known about a client that is gone.
  void forget(const std::string& client_id) { pending_.erase(client_id); }
  /// Drops the writes made for events of a link that went down (their clients' next events
  /// come on another link, or never when the gateway died).
  void forget_link(std::uint64_t link_serial);

  /// How many clients have a write the gateway has not confirmed yet.
  std::size_t size() const { return pending_.size(); }

 private:
  struct pending {
    std::uint64_t link_serial = 0;
    std::uint64_t writer_seq = 0;
    session_map session;
  };
  std::unordered_map<std::string, pending> pending_;
};

/// The first writer_seq of a worker process started at `now`: milliseconds since the epoch
/// shifted left by 20 bits. The gateway keeps the highest writer_seq a client's session got
/// (from any process), so a restarted worker must number above what the previous one left:
/// this stays ahead unless a process made over a million writes per millisecond of its life,
/// or the clock stepped back across the restart. 41 bits of milliseconds + 20 fit in 64.
std::uint64_t first_writer_seq(std::chrono::system_clock::time_point now);

/// The merge-write that turns `before` into `after` (changed keys set, missing keys erased),
/// or nullopt when they are equal. Merging, not replacing, keeps keys others set meanwhile.
std::optional<link::v2::SessionWrite> session_diff(const std::string& client_id,
                                                   const session_map& before,
                                                   const session_map& after);

}  // namespace gwx::sdk
