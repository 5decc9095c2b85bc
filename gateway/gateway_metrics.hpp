#pragma once

#include <string>

#include "common/metrics/counter.hpp"
#include "common/metrics/gauge.hpp"
#include "common/metrics/histogram.hpp"

namespace gwx::metrics {
class registry;
}

namespace gwx::gateway {

/// Handles for one public listener, resolved once at start-up. Detached (no-op) handles when
/// the gateway runs without --metrics. Updates are lock-free; usable from any loop.
struct listener_metrics {
  metrics::counter accepted;
  metrics::counter refused;  ///< over max_connections
  metrics::counter closed_by_client;
  metrics::counter closed_by_server;
  metrics::counter closed_protocol_error;
  metrics::counter closed_timeout;  ///< the handshake (or a close's flush) took too long
  metrics::counter closed_idle_timeout;
  metrics::counter closed_heartbeat_timeout;
  metrics::counter closed_slow_client;
  metrics::counter closed_queue_policy;
  metrics::counter closed_shutdown;
  metrics::counter closed_other;
  metrics::counter messages_in;
  metrics::counter messages_out;
  metrics::counter bytes_in;
  metrics::counter bytes_out;
  metrics::counter messages_dropped_slow;
  /// A message the listener's framing cannot carry (a newline to a tcp+line client).
  metrics::counter messages_dropped_unframeable;

  /// Resolves every handle of `listener` in `reg`.
  void attach(metrics::registry& reg, const std::string& listener);
  /// Counts a closed connection under a reason category derived from the close reason.
  void count_close(const std::string& reason) const;
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

  void attach(metrics::registry& reg);
};

}  // namespace gwx::gateway
