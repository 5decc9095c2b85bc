#pragma once

#include <optional>
#include <string>
#include <vector>

#include "tools/bench/load.hpp"

namespace gwx::bench {

/// Settings of `gwx-bench compare`.
struct compare_options {
  load_options base;  ///< connections, size, threads, durations; url.proto is the protocol
  unsigned rounds = 3;
  std::vector<std::string> phases;  ///< echo8, echo1, fanout, idle, connect
  std::size_t receivers = 900;
  std::size_t idle_connections = 10000;
  std::size_t idle_per_process = 10000;
  std::string bin_dir;  ///< gwx-register, gwx-gateway, gwx-worker
  std::string self;     ///< this binary (the reference server and idle holders)
  std::string log_dir;
  std::optional<unsigned> gateway_threads;  ///< unset: the gateway's default
  std::optional<unsigned> worker_threads;   ///< unset: the worker's default
  bool json = false;
};

/// The phases run when none are named.
std::vector<std::string> default_compare_phases();

/// Starts the reference server and a local cluster (fresh processes for every run), runs each
/// phase `rounds` times alternating reference and cluster, prints every run's line, then the
/// medians and the ratios cluster/reference. Returns 0, or 1 when a run had errors.
int run_compare(const compare_options& opt);

}  // namespace gwx::bench
