#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace gwx::bench {

/// What one server process cost during a run (`--pid NAME=PID`).
struct pid_figures {
  std::string name;
  pid_t pid = 0;
  std::optional<double> cpu_us;          ///< CPU time used in the measured window
  std::optional<double> cpu_us_per_msg;  ///< per message / delivery / connection
  std::optional<double> cpu_percent;     ///< of one core
  std::optional<long> rss_before;        ///< idle: VmRSS before opening the connections
  std::optional<long> rss_after;         ///< idle: VmRSS once the connections settled
  std::optional<double> rss_per_conn;    ///< idle: (after - before) / connections
};

/// The result of one run: printed as one `key=value` line or as one JSON object.
struct run_result {
  std::string mode;  ///< echo, idle, fanout, connect
  std::string protocol;
  std::string url;
  std::string label;            ///< compare: "reference" or "cluster"; else empty
  std::string phase;            ///< compare: echo8, echo1, fanout, idle, connect; else empty
  unsigned round = 0;           ///< compare: 1..rounds; else 0
  std::size_t connections = 0;  ///< echo/idle: clients; fanout: receivers; connect: concurrency
  std::size_t size = 0;
  std::size_t inflight = 0;
  unsigned threads = 0;
  double seconds = 0;          ///< length of the measured window
  std::uint64_t messages = 0;  ///< echo: replies; fanout: deliveries; connect: connections
  double rate = 0;             ///< messages per second
  std::uint64_t p50_ns = 0, p99_ns = 0, p999_ns = 0;
  std::uint64_t errors = 0;
  std::string first_error;  ///< what the first error was, if any
  std::uint64_t sent = 0;   ///< messages sent (fanout: by the sender) in the whole run
  std::uint64_t lost = 0;   ///< never answered / delivered after the drain time (in errors)
  std::vector<pid_figures> pids;
  std::optional<double> self_cpu_us_per_msg;  ///< the load generator itself
  std::optional<double> self_cpu_percent;
};

/// "rate" unit name of a mode: msgs/s, deliveries/s, conns/s.
const char* rate_unit(const std::string& mode);

/// One line: `mode=echo proto=ws msgs/s=… p50_ms=… … errors=0 cpu_us/msg[gateway]=…`.
std::string format_line(const run_result& r);

/// One JSON object (no newline).
std::string format_json(const run_result& r);

/// Escapes a string for a JSON string literal (without the quotes).
std::string json_escape(const std::string& s);

/// Formats a double with `digits` decimals.
std::string fixed(double v, int digits);

}  // namespace gwx::bench
