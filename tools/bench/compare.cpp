#include "tools/bench/compare.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <random>
#include <stdexcept>

#include "tools/bench/child_process.hpp"
#include "tools/bench/idle.hpp"

namespace gwx::bench {
namespace {

constexpr auto k_start_timeout = std::chrono::milliseconds(20000);

/// One system under test, running: its processes and the URLs a client uses.
struct system_under_test {
  std::vector<std::unique_ptr<child_process>> procs;  // stopped in reverse order
  target_url echo_url;                                // echo listener
  target_url broadcast_url;                           // broadcast listener (may equal echo_url)
  std::string prefix;                                 // fanout: what makes a message a broadcast
  std::vector<watched_pid> pids;

  ~system_under_test() {
    for (auto it = procs.rbegin(); it != procs.rend(); ++it) {
      (*it)->stop();
    }
  }
};

std::string listen_url(protocol p) {
  target_url u;
  u.proto = p;
  u.host = "127.0.0.1";
  u.port = 0;
  return u.to_string();
}

std::string random_secret() {
  std::random_device rd;
  return "bench-" + std::to_string(rd()) + std::to_string(rd());
}

class compare_run {
 public:
  explicit compare_run(const compare_options& opt) : opt_(opt) {}

  int run() {
    const auto proto = opt_.base.url.proto;
    load_at_start_ = load_average();
    for (const auto& phase : opt_.phases) {
      for (unsigned round = 1; round <= opt_.rounds; ++round) {
        for (const bool cluster : {false, true}) {
          auto r = run_one(phase, cluster, round);
          r.label = cluster ? "cluster" : "reference";
          r.phase = phase;
          r.round = round;
          print(r, phase, round);
          results_[phase][cluster].push_back(r);
        }
      }
    }
    summarize(proto);
    return errors_ > 0 ? 1 : 0;
  }

 private:
  run_result run_one(const std::string& phase, bool cluster, unsigned round) {
    const bool fanout = phase == "fanout";
    auto sut = cluster ? start_cluster(fanout ? "commands" : "echo", phase, round)
                       : start_reference(phase, round);
    load_options o = opt_.base;
    o.pids = sut->pids;
    o.url = fanout ? sut->broadcast_url : sut->echo_url;
    if (phase == "echo8") {
      o.inflight = 8;
      return run_echo(o);
    }
    if (phase == "echo1") {
      o.inflight = 1;
      return run_echo(o);
    }
    if (phase == "fanout") {
      o.connections = opt_.receivers;
      o.inflight = 1;
      o.prefix = sut->prefix;
      return run_fanout(o);
    }
    if (phase == "idle") {
      o.connections = opt_.idle_connections;
      return run_idle(o, opt_.idle_per_process, opt_.self, opt_.log_dir);
    }
    if (phase == "connect") {
      o.inflight = 1;
      return run_connect(o);
    }
    throw std::invalid_argument("unknown phase '" + phase +
                                "' (echo8, echo1, fanout, idle, connect)");
  }

  std::string log_path(const std::string& what, const std::string& phase, unsigned round) const {
    return opt_.log_dir + "/" + phase + "-" + std::to_string(round) + "-" + what + ".stderr";
  }

  std::unique_ptr<system_under_test> start_reference(const std::string& phase, unsigned round) {
    auto sut = std::make_unique<system_under_test>();
    const auto url = listen_url(opt_.base.url.proto);
    sut->procs.push_back(std::make_unique<child_process>(
        "reference",
        std::vector<std::string>{opt_.self, "reference", "--listen", url, "--broadcast", url},
        log_path("reference", phase, round)));
    auto& p = *sut->procs.back();
    sut->echo_url = parse_target_url(p.wait_for("listening echo ", k_start_timeout));
    sut->broadcast_url = parse_target_url(p.wait_for("listening broadcast ", k_start_timeout));
    sut->pids.push_back({"reference", p.pid()});
    return sut;
  }

  std::unique_ptr<system_under_test> start_cluster(const std::string& app, const std::string& phase,
                                                   unsigned round) {
    auto sut = std::make_unique<system_under_test>();
    const auto secret = random_secret();
    sut->procs.push_back(std::make_unique<child_process>(
        "gwx-register",
        std::vector<std::string>{opt_.bin_dir + "/gwx-register", "--listen", "127.0.0.1:0"},
        log_path("register", phase, round)));
    const auto reg = sut->procs.back()->wait_for("listening grpc://", k_start_timeout);

    std::vector<std::string> gw = {opt_.bin_dir + "/gwx-gateway",
                                   "--register",
                                   reg,
                                   "--secret",
                                   secret,
                                   "--internal",
                                   "127.0.0.1:0",
                                   "--listen",
                                   listen_url(opt_.base.url.proto)};
    if (opt_.gateway_threads) {
      gw.insert(gw.end(), {"--threads", std::to_string(*opt_.gateway_threads)});
    }
    sut->procs.push_back(
        std::make_unique<child_process>("gwx-gateway", gw, log_path("gateway", phase, round)));
    auto& gateway = *sut->procs.back();
    const auto client_url = gateway.wait_for("listening ", k_start_timeout);
    gateway.wait_for("listening internal://", k_start_timeout);
    sut->echo_url = sut->broadcast_url = parse_target_url(client_url);

    std::vector<std::string> wk = {
        opt_.bin_dir + "/gwx-worker", "--register", reg, "--secret", secret, "--app", app};
    if (opt_.worker_threads) {
      wk.insert(wk.end(), {"--threads", std::to_string(*opt_.worker_threads)});
    }
    sut->procs.push_back(
        std::make_unique<child_process>("gwx-worker", wk, log_path("worker", phase, round)));
    auto& worker = *sut->procs.back();
    worker.wait_for("linked ", k_start_timeout);
    sut->pids.push_back({"gateway", gateway.pid()});
    sut->pids.push_back({"worker", worker.pid()});
    // The commands app broadcasts "to-all TEXT" as TEXT to every client (the sender gets "ok").
    sut->prefix = app == "commands" ? "to-all " : "";
    return sut;
  }

  void print(const run_result& r, const std::string& phase, unsigned round) {
    errors_ += r.errors;
    if (opt_.json) {
      std::cout << format_json(r) << std::endl;
    } else {
      std::cout << "round=" << round << " phase=" << phase << " " << format_line(r) << std::endl;
    }
  }

  static double median(std::vector<double> v) {
    if (v.empty()) {
      return 0;
    }
    std::sort(v.begin(), v.end());
    const auto n = v.size();
    return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
  }

  /// Median over the rounds of one figure of one system.
  template <typename F>
  std::optional<double> med(const std::string& phase, bool cluster, F figure) const {
    const auto it = results_.find(phase);
    if (it == results_.end()) {
      return std::nullopt;
    }
    const auto jt = it->second.find(cluster);
    if (jt == it->second.end()) {
      return std::nullopt;
    }
    std::vector<double> v;
    for (const auto& r : jt->second) {
      if (const auto x = figure(r)) {
        v.push_back(*x);
      }
    }
    if (v.empty()) {
      return std::nullopt;
    }
    return median(v);
  }

  static std::function<std::optional<double>(const run_result&)> pid_figure(const std::string& name,
                                                                            bool rss) {
    return [name, rss](const run_result& r) -> std::optional<double> {
      for (const auto& p : r.pids) {
        if (p.name == name) {
          return rss ? p.rss_per_conn : p.cpu_us_per_msg;
        }
      }
      return std::nullopt;
    };
  }

  /// Prints the medians and ratios: to stdout, or to stderr with --json (where stdout holds one
  /// JSON object per line, the summary object last).
  void summarize(protocol proto) {
    std::ostream& text = opt_.json ? std::cerr : std::cout;
    const auto rate = [](const run_result& r) -> std::optional<double> { return r.rate; };
    const auto p99 = [](const run_result& r) -> std::optional<double> {
      return static_cast<double>(r.p99_ns) / 1e6;
    };
    auto show = [](const std::optional<double>& v, int digits) {
      return v ? fixed(*v, digits) : std::string("?");
    };
    auto ratio = [](const std::optional<double>& a, const std::optional<double>& b) {
      return a && b && *b != 0 ? std::optional<double>(*a / *b) : std::nullopt;
    };
    std::string json = "{\"summary\":{\"protocol\":\"" + std::string(protocol_name(proto)) +
                       "\",\"rounds\":" + std::to_string(opt_.rounds) +
                       ",\"connections\":" + std::to_string(opt_.base.connections) +
                       ",\"size\":" + std::to_string(opt_.base.size) +
                       ",\"errors\":" + std::to_string(errors_);
    auto jnum = [](const std::optional<double>& v) {
      return v ? fixed(*v, 4) : std::string("null");
    };
    const auto load_at_end = load_average();
    text << "summary proto=" << protocol_name(proto) << " rounds=" << opt_.rounds
         << " conns=" << opt_.base.connections << " size=" << opt_.base.size
         << " (medians; ratio = cluster / reference); load average " << load_at_start_
         << " at the start, " << load_at_end << " at the end\n";
    json += ",\"load_average_start\":\"" + load_at_start_ + "\",\"load_average_end\":\"" +
            load_at_end + "\"";
    for (const auto& phase : opt_.phases) {
      if (phase == "echo8" || phase == "echo1" || phase == "connect") {
        const auto ref = med(phase, false, rate);
        const auto gw = med(phase, true, rate);
        const auto ref99 = med(phase, false, p99);
        const auto gw99 = med(phase, true, p99);
        const char* unit = phase == "connect" ? "conns/s" : "msgs/s";
        const auto ref_cpu = med(phase, false, pid_figure("reference", false));
        const auto gw_cpu = med(phase, true, pid_figure("gateway", false));
        const auto wk_cpu = med(phase, true, pid_figure("worker", false));
        text << "  " << phase << ": reference " << show(ref, 0) << " " << unit << " p99 "
             << show(ref99, 3) << " ms | cluster " << show(gw, 0) << " " << unit << " p99 "
             << show(gw99, 3) << " ms | ratio " << show(ratio(gw, ref), 3) << "  [CPU us/"
             << (phase == "connect" ? "conn" : "msg") << " reference " << show(ref_cpu, 2)
             << ", gateway " << show(gw_cpu, 2) << ", worker " << show(wk_cpu, 2) << "]\n";
        json += ",\"" + phase + "\":{\"reference\":" + jnum(ref) + ",\"cluster\":" + jnum(gw) +
                ",\"ratio\":" + jnum(ratio(gw, ref)) + ",\"reference_p99_ms\":" + jnum(ref99) +
                ",\"cluster_p99_ms\":" + jnum(gw99) + ",\"reference_cpu_us\":" + jnum(ref_cpu) +
                ",\"gateway_cpu_us\":" + jnum(gw_cpu) + ",\"worker_cpu_us\":" + jnum(wk_cpu) + "}";
      } else if (phase == "fanout") {
        const auto ref = med(phase, false, pid_figure("reference", false));
        const auto gw = med(phase, true, pid_figure("gateway", false));
        const auto wk = med(phase, true, pid_figure("worker", false));
        const auto ref_rate = med(phase, false, rate);
        const auto gw_rate = med(phase, true, rate);
        text << "  fanout (" << opt_.receivers << " receivers): CPU us/delivery reference "
             << show(ref, 3) << " | gateway " << show(gw, 3) << " (worker " << show(wk, 3)
             << ") | ratio " << show(ratio(gw, ref), 3) << "  [deliveries/s reference "
             << show(ref_rate, 0) << ", cluster " << show(gw_rate, 0) << "]\n";
        json += ",\"fanout\":{\"reference_cpu_us_per_delivery\":" + jnum(ref) +
                ",\"gateway_cpu_us_per_delivery\":" + jnum(gw) +
                ",\"worker_cpu_us_per_delivery\":" + jnum(wk) +
                ",\"ratio\":" + jnum(ratio(gw, ref)) + ",\"reference_rate\":" + jnum(ref_rate) +
                ",\"cluster_rate\":" + jnum(gw_rate) + "}";
      } else if (phase == "idle") {
        const auto ref = med(phase, false, pid_figure("reference", true));
        const auto gw = med(phase, true, pid_figure("gateway", true));
        const auto wk = med(phase, true, pid_figure("worker", true));
        text << "  idle (" << opt_.idle_connections << " conns): RSS B/conn reference "
             << show(ref, 0) << " | gateway " << show(gw, 0) << " (worker " << show(wk, 0)
             << ") | ratio " << show(ratio(gw, ref), 2) << "\n";
        json += ",\"idle\":{\"connections\":" + std::to_string(opt_.idle_connections) +
                ",\"reference_rss_per_conn\":" + jnum(ref) +
                ",\"gateway_rss_per_conn\":" + jnum(gw) + ",\"worker_rss_per_conn\":" + jnum(wk) +
                ",\"ratio\":" + jnum(ratio(gw, ref)) + "}";
      }
    }
    if (errors_ > 0) {
      text << "  errors: " << errors_ << " (see the run lines above)\n";
    }
    json += "}}";
    if (opt_.json) {
      std::cout << json << "\n";
    }
    std::cout.flush();
    text.flush();
  }

  /// The first three fields of /proc/loadavg: how busy the machine was.
  static std::string load_average() {
    std::ifstream in("/proc/loadavg");
    std::string a, b, c;
    in >> a >> b >> c;
    return a + " " + b + " " + c;
  }

  const compare_options& opt_;
  std::string load_at_start_;
  std::map<std::string, std::map<bool, std::vector<run_result>>> results_;
  std::uint64_t errors_ = 0;
};

}  // namespace

std::vector<std::string> default_compare_phases() {
  return {"echo8", "echo1", "fanout", "idle", "connect"};
}

int run_compare(const compare_options& opt) {
  for (const auto& bin : {"gwx-register", "gwx-gateway", "gwx-worker"}) {
    const auto path = opt.bin_dir + "/" + bin;
    if (access(path.c_str(), X_OK) != 0) {
      throw std::runtime_error(path + " not found (build it, or point --bin at the directory)");
    }
  }
  compare_run run(opt);
  return run.run();
}

}  // namespace gwx::bench
