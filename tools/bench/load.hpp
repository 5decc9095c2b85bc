#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "tools/bench/proc_stats.hpp"
#include "tools/bench/report.hpp"
#include "tools/bench/target_url.hpp"

namespace gwx::bench {

/// Settings of one load run (echo, fanout, connect) or of one idle holder.
struct load_options {
  target_url url;
  std::size_t connections = 100;  ///< echo/idle: clients; fanout: receivers; connect: concurrency
  std::size_t size = 32;          ///< message size in bytes (the payload, before framing)
  std::size_t inflight = 1;       ///< messages outstanding per connection (fanout: per sender)
  unsigned threads = 1;           ///< load-generator event loops
  double warmup_s = 1;
  double duration_s = 5;
  double drain_s = 5;          ///< how long outstanding messages may take after the window
  double open_timeout_s = 60;  ///< how long opening every connection may take
  bool binary = false;         ///< WebSocket binary frames instead of text
  std::string prefix;          ///< fanout: put before each message the sender sends
  std::size_t max_message = 1 << 20;
  std::size_t read_buffer = 4096;  ///< initial read buffer per connection
  /// The receives of one loop turn in one io_uring call, and the sends they cause in another
  /// (common/net/batched_io.hpp); false, or where io_uring is unavailable: one recv and one
  /// send per connection and turn.
  bool io_uring = true;
  std::vector<watched_pid> pids;
};

/// `connections` clients, each keeping `inflight` messages outstanding; every reply must be the
/// message sent, in order. Throws std::runtime_error when the target cannot be reached.
run_result run_echo(const load_options& opt);

/// `connections` receivers and one sender; every message the sender sends must reach every
/// receiver in order. The sender keeps `inflight` messages not yet delivered everywhere.
run_result run_fanout(const load_options& opt);

/// `connections` concurrent loops of: connect, handshake, one echo, close.
run_result run_connect(const load_options& opt);

/// Opens `connections` idle clients and keeps them open until `keep_open` returns (called once
/// they are all open or failed, with the counts and the first error). For the idle mode's
/// holder processes.
void hold_idle(const load_options& opt,
               const std::function<void(std::size_t opened, std::size_t failed,
                                        const std::string& first_error)>& keep_open);

}  // namespace gwx::bench
