#pragma once

#include <array>
#include <string>

#include "common/metrics/counter.hpp"
#include "common/metrics/gauge.hpp"
#include "common/metrics/histogram.hpp"
#include "gateway/close_cause.hpp"

namespace gwx::metrics {
class registry;
}

namespace gwx::gateway {

/// Handles for one public listener, resolved once at start-up. Detached (no-op) handles when
/// the gateway runs without --metrics. Updates are lock-free; usable from any loop.
struct listener_metrics {
  metrics::counter accepted;
  metrics::counter refused;  ///< over max_connections
  /// Over max_handshakes_per_ip: the client's address held that many unfinished handshakes.
  metrics::counter refused_handshakes_per_ip;
  /// The gateway's clients at what its open-file limit allows (all listeners together).
  metrics::counter refused_open_files;
  /// Closed connections, one handle per close_cause.
  std::array<metrics::counter, k_close_causes> closed;
  metrics::counter messages_in;
  metrics::counter messages_out;
  metrics::counter bytes_in;
  metrics::counter bytes_out;
  metrics::counter messages_dropped_slow;
  /// A message the listener's framing cannot carry (a newline to a tcp+line client).
  metrics::counter messages_dropped_unframeable;

  /// Resolves every handle of `listener` in `reg`.
  void attach(metrics::registry& reg, const std::string& listener);
  void count_close(close_cause cause) const { closed[static_cast<std::size_t>(cause)].inc(); }
};

/// Gateway-wide event handles.
struct event_metrics {
  metrics::gauge queued;
  metrics::gauge in_flight;
  metrics::counter redelivered;
  metrics::counter dropped_queue_bound;
  metrics::counter dropped_queue_age;
  /// Handed to workers that all vanished before acknowledging it, max-attempts times.
  metrics::counter dropped_quarantined;
  metrics::histogram round_trip;  ///< sent to a worker until acknowledged
  /// A worker's write refused for a client's bounds: a uid or session over
  /// k_max_client_info_bytes, a join over the client's group bounds.
  metrics::counter refused_uid_session;
  metrics::counter refused_groups;

  void attach(metrics::registry& reg);
};

}  // namespace gwx::gateway
