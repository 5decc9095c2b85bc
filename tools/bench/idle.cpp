#include "tools/bench/idle.hpp"

#include <chrono>
#include <iostream>
#include <memory>
#include <sstream>
#include <stdexcept>

#include "tools/bench/child_process.hpp"

namespace gwx::bench {
namespace {

constexpr unsigned k_settle_interval_ms = 500;
constexpr unsigned k_settle_max_ms = 30000;

}  // namespace

run_result run_idle(const load_options& opt, std::size_t per_process, const std::string& self,
                    const std::string& log_dir) {
  run_result r;
  r.mode = "idle";
  r.protocol = scheme_of(opt.url);
  r.url = opt.url.to_string();
  r.threads = 1;
  const auto before = settled_rss(opt.pids, 200, 5000);
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::unique_ptr<child_process>> holders;
  std::size_t left = opt.connections;
  const std::size_t count =
      (opt.connections + per_process - 1) / std::max<std::size_t>(1, per_process);
  for (std::size_t i = 0; i < count; ++i) {
    const std::size_t n = left / (count - i);
    left -= n;
    std::vector<std::string> argv = {self,
                                     "idle-hold",
                                     opt.url.to_string(),
                                     "--connections",
                                     std::to_string(n),
                                     "--open-timeout",
                                     std::to_string(opt.open_timeout_s),
                                     "--log-level",
                                     "warn"};
    holders.push_back(std::make_unique<child_process>(
        "idle holder " + std::to_string(i + 1), argv,
        log_dir + "/idle-holder-" + std::to_string(i + 1) + ".stderr"));
  }
  std::size_t opened = 0;
  for (auto& h : holders) {
    const auto line = h->wait_for(
        "opened ", std::chrono::milliseconds(static_cast<long>(opt.open_timeout_s * 1000) + 10000));
    std::istringstream in(line);
    std::size_t ok = 0;
    std::size_t failed = 0;
    std::string word;
    in >> ok >> word >> failed;
    opened += ok;
    r.errors += failed;
    std::string why;
    std::getline(in, why);
    if (failed > 0 && r.first_error.empty()) {
      r.first_error = why.empty() ? "connections failed" : why.substr(1);
    }
  }
  const auto after = settled_rss(opt.pids, k_settle_interval_ms, k_settle_max_ms);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.connections = opened;
  r.messages = opened;
  for (std::size_t i = 0; i < opt.pids.size(); ++i) {
    pid_figures p;
    p.name = opt.pids[i].name;
    p.pid = opt.pids[i].pid;
    p.rss_before = before[i];
    p.rss_after = after[i];
    if (before[i] && after[i] && opened > 0) {
      p.rss_per_conn = static_cast<double>(*after[i] - *before[i]) / static_cast<double>(opened);
    }
    r.pids.push_back(p);
  }
  for (auto& h : holders) {
    h->close_stdin();
  }
  for (auto& h : holders) {
    h->stop(std::chrono::milliseconds(10000));
  }
  if (opened == 0) {
    throw std::runtime_error("no idle connection opened to " + opt.url.to_string() +
                             (r.first_error.empty() ? "" : ": " + r.first_error));
  }
  return r;
}

int hold_idle_main(const load_options& opt) {
  hold_idle(opt, [](std::size_t opened, std::size_t failed, const std::string& why) {
    std::cout << "opened " << opened << " failed " << failed << (why.empty() ? "" : " " + why)
              << std::endl;
    // Hold until the parent closes our stdin.
    char c = 0;
    while (std::cin.get(c)) {
    }
  });
  return 0;
}

}  // namespace gwx::bench
