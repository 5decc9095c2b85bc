#include "gateway/gateway_metrics.hpp"

#include "common/metrics/registry.hpp"

namespace gwx::gateway {

void listener_metrics::attach(metrics::registry& reg, const std::string& listener) {
  auto& conns = reg.add_counter("gwx_gateway_connections_accepted_total",
                                "Client connections accepted, by listener.", {"listener"});
  accepted = conns.with({listener});
  auto& refusals = reg.add_counter(
      "gwx_gateway_connections_refused_total",
      "Client connections refused, by listener and reason: max_connections, open_files (the "
      "gateway's clients at what its open-file limit allows), handshakes_per_ip "
      "(max_handshakes_per_ip unfinished from the client's address).",
      {"listener", "reason"});
  refused = refusals.with({listener, "max_connections"});
  refused_handshakes_per_ip = refusals.with({listener, "handshakes_per_ip"});
  refused_open_files = refusals.with({listener, "open_files"});
  auto& closed_family =
      reg.add_counter("gwx_gateway_connections_closed_total",
                      "Client connections closed, by listener and reason.", {"listener", "reason"});
  for (std::size_t i = 0; i < k_close_causes; ++i) {
    closed[i] = closed_family.with({listener, label(static_cast<close_cause>(i))});
  }
  auto& messages =
      reg.add_counter("gwx_gateway_messages_total", "Client messages, by listener and direction.",
                      {"listener", "direction"});
  messages_in = messages.with({listener, "in"});
  messages_out = messages.with({listener, "out"});
  auto& bytes = reg.add_counter(
      "gwx_gateway_message_bytes_total",
      "Client message bytes, by listener and direction (in: payloads; out: as framed on "
      "the wire).",
      {"listener", "direction"});
  bytes_in = bytes.with({listener, "in"});
  bytes_out = bytes.with({listener, "out"});
  auto& dropped = reg.add_counter("gwx_gateway_messages_dropped_total",
                                  "Messages to clients dropped, by listener and reason.",
                                  {"listener", "reason"});
  messages_dropped_slow = dropped.with({listener, "slow_client"});
  messages_dropped_unframeable = dropped.with({listener, "unframeable"});
}

void event_metrics::attach(metrics::registry& reg) {
  queued = reg.add_gauge("gwx_gateway_events_queued",
                         "Client events waiting for a worker (none linked, or a drain "
                         "switch-over in progress).")
               .with();
  in_flight = reg.add_gauge("gwx_gateway_events_in_flight",
                            "Client events sent to a worker and not acknowledged yet.")
                  .with();
  redelivered = reg.add_counter("gwx_gateway_events_redelivered_total",
                                "Client events handed to another worker after theirs went away.")
                    .with();
  auto& dropped =
      reg.add_counter("gwx_gateway_events_dropped_total",
                      "Client events dropped (queue policy, quarantine), by reason.", {"reason"});
  dropped_queue_bound = dropped.with({"queue_bound"});
  dropped_queue_age = dropped.with({"queue_age"});
  dropped_quarantined = dropped.with({"quarantined"});
  round_trip = reg.add_histogram("gwx_gateway_event_round_trip_seconds",
                                 "Time from sending a client event to a worker until its "
                                 "acknowledgement.",
                                 metrics::latency_buckets())
                   .with();
  auto& refused = reg.add_counter(
      "gwx_gateway_client_writes_refused_total",
      "Uid, session and group writes of workers refused for a client's bounds, by bound.",
      {"bound"});
  refused_uid_session = refused.with({"uid_session"});
  refused_groups = refused.with({"groups"});
}

}  // namespace gwx::gateway
