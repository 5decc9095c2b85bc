#pragma once

#include <string>

#include "tools/bench/load.hpp"

namespace gwx::bench {

/// Idle mode: measures the RSS of each watched process (settled) before and after opening
/// `opt.connections` idle clients, spread over holder processes of at most `per_process`
/// connections each (a process here may hold at most 20,000 open files); `self` is the path of
/// this binary (the holders run `self idle-hold …`) and `log_dir` gets their stderr.
run_result run_idle(const load_options& opt, std::size_t per_process, const std::string& self,
                    const std::string& log_dir);

/// The holder side: opens `opt.connections` idle clients, prints `opened N failed M [error]`,
/// and keeps them open until its stdin closes.
int hold_idle_main(const load_options& opt);

}  // namespace gwx::bench
