#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "common/cluster/client.hpp"

namespace gwx::ctl {

/// Process exit codes of gwxctl.
enum exit_code : int {
  k_ok = 0,
  /// Partial or failed: some gateway did not answer or confirm, or no register answered.
  k_failed = 1,
  /// Bad command line.
  k_usage = 2,
};

/// One gwxctl verb. Runs on the main thread with a started, ready client; prints its result on
/// stdout and problems on stderr; returns the exit code.
struct verb {
  std::string name;
  /// Argument synopsis, e.g. "UID MSG".
  std::string args;
  std::string help;
  std::size_t min_args = 0;
  std::function<int(Client& client, const std::vector<std::string>& args,
                    std::chrono::milliseconds timeout)>
      run;
};

/// Every verb except `gateways` (which needs no links), in help order.
const std::vector<verb>& verbs();

/// The verb called `name`, or null.
const verb* find_verb(std::string_view name);

/// The verb list for --help, one per line.
std::string verbs_help();

}  // namespace gwx::ctl
