// gwx-bench: load generator (echo, idle, fanout, connect), the single-process reference server
// and the interleaved comparison of a local cluster against it. See docs/benchmarks.md.
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <unistd.h>

#include <climits>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <sstream>

#include "common/options.hpp"
#include "tools/bench/compare.hpp"
#include "tools/bench/idle.hpp"
#include "tools/bench/load.hpp"
#include "tools/bench/reference_server.hpp"

namespace {

constexpr int k_usage = 2;

const char* const k_about =
    "Modes:\n"
    "  echo URL       --connections clients each keep --inflight messages outstanding against an\n"
    "                 echo service; every reply must be the message sent, in order.\n"
    "  idle URL       opens --connections idle clients (in holder processes of at most\n"
    "                 --per-process each) and reports the RSS per connection of each --pid.\n"
    "  fanout URL     --receivers clients and one sender; the server must deliver each sent\n"
    "                 message to every receiver (a gwx cluster: the commands app with\n"
    "                 --prefix 'to-all '). Reports deliveries/s and CPU per delivery.\n"
    "  connect URL    --connections concurrent loops of connect, handshake, one echo, close.\n"
    "  reference      serves --listen URL (echo) and --broadcast URL (to every client of that\n"
    "                 listener) from one thread: the relay limit on this machine.\n"
    "  compare        starts the reference and a local cluster from --bin (register, gateway,\n"
    "                 worker with the echo app; the commands app for fanout), runs --phases\n"
    "                 alternately on each for --rounds, prints every run and the median ratios.\n"
    "\n"
    "URL: ws://HOST:PORT[/path], tcp+line://HOST:PORT, tcp+frame://HOST:PORT (4-byte big-endian\n"
    "length prefix), tcp+raw://HOST:PORT. Each message is --size printable bytes carrying its\n"
    "sequence number and send time. --pid NAME=PID (repeatable) names server processes whose\n"
    "CPU time (utime+stime over the measured window) or RSS (VmRSS) is reported. One result\n"
    "line per run (--json: one JSON object). Exit status: 0 ok, 1 errors (lost, mismatched or\n"
    "out-of-order messages, failed connections) or the target unreachable, 2 bad command line.";

std::string self_path() {
  char buf[PATH_MAX] = {};
  const auto n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string("gwx-bench");
}

void raise_file_limit() {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    setrlimit(RLIMIT_NOFILE, &lim);
  }
}

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string item; std::getline(in, item, ',');) {
    if (!item.empty()) {
      out.push_back(item);
    }
  }
  return out;
}

int serve_reference(const gwx::po::variables_map& vm) {
  std::vector<gwx::bench::reference_listener> listeners;
  auto add = [&](const char* option, gwx::bench::reference_role role) {
    if (vm.count(option) == 0U) {
      return;
    }
    for (const auto& text : vm[option].as<std::vector<std::string>>()) {
      try {
        listeners.push_back({role, gwx::bench::parse_target_url(text, true)});
      } catch (const std::exception& e) {
        gwx::die("gwx-bench", std::string("--") + option + ": " + e.what(), k_usage);
      }
    }
  };
  add("listen", gwx::bench::reference_role::echo);
  add("broadcast", gwx::bench::reference_role::broadcast);
  if (listeners.empty()) {
    gwx::die("gwx-bench", "reference: give at least one --listen URL or --broadcast URL", k_usage);
  }
  try {
    gwx::bench::reference_server server(listeners, vm["max-message"].as<std::size_t>());
    for (const auto& b : server.bound()) {
      std::cout << "listening " << b << "\n";
    }
    std::cout.flush();
    server.run();
  } catch (const std::exception& e) {
    gwx::die("gwx-bench", std::string("reference: ") + e.what(), 1);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  using gwx::po::value;
  gwx::option_parser parser("gwx-bench",
                            "gwx-bench echo|idle|fanout|connect URL [options]\n"
                            "       gwx-bench reference --listen URL [--broadcast URL]\n"
                            "       gwx-bench compare [--protocol ws] [--rounds 3] [--bin DIR]",
                            k_about);
  // clang-format off
  parser.options().add_options()
      ("connections", value<std::size_t>()->default_value(100)->value_name("N"),
       "echo/idle: clients; connect: concurrent connect loops")
      ("receivers", value<std::size_t>()->default_value(900)->value_name("N"),
       "fanout: receiving clients (plus one sender)")
      ("size", value<std::size_t>()->default_value(32)->value_name("BYTES"),
       "message size (at least 20)")
      ("inflight", value<std::size_t>()->default_value(1)->value_name("N"),
       "messages outstanding per connection (fanout: not yet delivered to every receiver)")
      ("threads", value<unsigned>()->default_value(1)->value_name("N"),
       "load-generator event loops (one thread each)")
      ("duration", value<double>()->default_value(5)->value_name("SECONDS"),
       "measured window")
      ("warmup", value<double>()->default_value(1)->value_name("SECONDS"),
       "load before the measured window, not counted")
      ("drain-timeout", value<double>()->default_value(5)->value_name("SECONDS"),
       "after the window, how long outstanding messages may take before they count as lost")
      ("open-timeout", value<double>()->default_value(60)->value_name("SECONDS"),
       "how long opening all connections may take")
      ("binary", gwx::po::bool_switch(), "WebSocket binary frames (default: text)")
      ("io-uring", value<std::string>()->default_value("on")->value_name("on|off"),
       "load generator: on: the receives of the connections found readable in one turn of a "
       "loop go to the kernel in one io_uring call, and the sends they cause in another (where "
       "io_uring is unavailable, as off); off: one recv and one send per connection and turn")
      ("prefix", value<std::string>()->default_value("")->value_name("TEXT"),
       "fanout: put TEXT before every message the sender sends (gwx commands app: 'to-all ')")
      ("pid", value<std::vector<std::string>>()->value_name("NAME=PID"),
       "a server process to account CPU / RSS to (repeatable)")
      ("per-process", value<std::size_t>()->default_value(10000)->value_name("N"),
       "idle: connections per holder process (a process may hold 20,000 files here)")
      ("json", gwx::po::bool_switch(), "print the result as one JSON object per run")
      ("max-message", value<std::size_t>()->default_value(1 << 20)->value_name("BYTES"),
       "largest message accepted (client and reference server)")
      ("listen", value<std::vector<std::string>>()->value_name("URL"),
       "reference: echo listener (repeatable; port 0 picks a free port)")
      ("broadcast", value<std::vector<std::string>>()->value_name("URL"),
       "reference: broadcast listener (repeatable)")
      ("protocol", value<std::string>()->default_value("ws")->value_name("PROTO"),
       "compare: ws, tcp+line, tcp+frame or tcp+raw")
      ("rounds", value<unsigned>()->default_value(3)->value_name("N"),
       "compare: runs of each phase on each system, alternating")
      ("phases", value<std::string>()->default_value("echo8,echo1,fanout,idle,connect")
                     ->value_name("LIST"),
       "compare: echo8 (8 in flight), echo1, fanout, idle, connect")
      ("idle-connections", value<std::size_t>()->default_value(10000)->value_name("N"),
       "compare: idle clients")
      ("bin", value<std::string>()->value_name("DIR"),
       "compare: where gwx-register, gwx-gateway, gwx-worker are (default: next to gwx-bench)")
      ("gateway-threads", value<unsigned>()->value_name("N"),
       "compare: gwx-gateway --threads (default: the gateway's default, one per core)")
      ("worker-threads", value<unsigned>()->value_name("N"),
       "compare: gwx-worker --threads (default: the worker's default)")
      ("log-dir", value<std::string>()->value_name("DIR"),
       "compare/idle: where the started processes' stderr goes (default: a new temporary "
       "directory)")
      ("args", value<std::vector<std::string>>()->value_name("MODE [URL]"),
       "what to do (positional)");
  // clang-format on
  parser.allow_positional("args");
  const auto vm = parser.parse(argc, argv);
  if (vm["log-level"].defaulted()) {
    spdlog::set_level(spdlog::level::warn);
  }
  const auto words = vm.count("args") != 0U ? vm["args"].as<std::vector<std::string>>()
                                            : std::vector<std::string>{};
  if (words.empty()) {
    gwx::die("gwx-bench",
             "missing MODE: echo, idle, fanout, connect, reference or compare "
             "(see --help)",
             k_usage);
  }
  const auto& mode = words[0];
  raise_file_limit();
  // A peer that goes away while a write is pending is an error of that connection, not a
  // reason to die (the reference server's writev has no MSG_NOSIGNAL).
  std::signal(SIGPIPE, SIG_IGN);
  if (mode == "reference") {
    if (words.size() > 1) {
      gwx::die("gwx-bench", "reference takes no URL argument: use --listen / --broadcast", k_usage);
    }
    return serve_reference(vm);
  }

  gwx::bench::load_options opt;
  opt.connections = vm["connections"].as<std::size_t>();
  opt.size = vm["size"].as<std::size_t>();
  opt.inflight = vm["inflight"].as<std::size_t>();
  opt.threads = vm["threads"].as<unsigned>();
  opt.duration_s = vm["duration"].as<double>();
  opt.warmup_s = vm["warmup"].as<double>();
  opt.drain_s = vm["drain-timeout"].as<double>();
  opt.open_timeout_s = vm["open-timeout"].as<double>();
  opt.binary = vm["binary"].as<bool>();
  try {
    opt.io_uring = gwx::on_off(vm, "io-uring");
  } catch (const std::invalid_argument& e) {
    gwx::die("gwx-bench", e.what(), k_usage);
  }
  opt.prefix = vm["prefix"].as<std::string>();
  opt.max_message = vm["max-message"].as<std::size_t>();
  if (opt.size < 20) {
    gwx::die("gwx-bench", "--size must be at least 20 (sequence number and send time)", k_usage);
  }
  if (opt.size + opt.prefix.size() > opt.max_message) {
    gwx::die("gwx-bench", "--size is larger than --max-message", k_usage);
  }
  if (opt.inflight == 0 || opt.threads == 0) {
    gwx::die("gwx-bench", "--inflight and --threads must be at least 1", k_usage);
  }
  if (opt.duration_s <= 0 || opt.warmup_s < 0 || opt.drain_s < 0 || opt.open_timeout_s <= 0) {
    gwx::die("gwx-bench",
             "--duration and --open-timeout must be positive, --warmup and "
             "--drain-timeout not negative",
             k_usage);
  }
  if (vm.count("pid") != 0U) {
    for (const auto& p : vm["pid"].as<std::vector<std::string>>()) {
      try {
        opt.pids.push_back(gwx::bench::parse_watched_pid(p));
      } catch (const std::exception& e) {
        gwx::die("gwx-bench", e.what(), k_usage);
      }
    }
  }
  const bool json = vm["json"].as<bool>();
  std::string log_dir;
  auto make_log_dir = [&] {
    if (vm.count("log-dir") != 0U) {
      log_dir = vm["log-dir"].as<std::string>();
      std::filesystem::create_directories(log_dir);
    } else {
      std::string tmpl = (std::filesystem::temp_directory_path() / "gwx-bench-XXXXXX").string();
      if (mkdtemp(tmpl.data()) == nullptr) {
        gwx::die("gwx-bench", "cannot make a temporary directory", 1);
      }
      log_dir = tmpl;
    }
  };

  try {
    if (mode == "compare") {
      if (words.size() > 1) {
        gwx::die("gwx-bench", "compare takes no URL argument: use --protocol", k_usage);
      }
      gwx::bench::compare_options c;
      c.base = opt;
      c.base.url.proto = gwx::bench::parse_protocol(vm["protocol"].as<std::string>());
      c.rounds = vm["rounds"].as<unsigned>();
      c.phases = split_commas(vm["phases"].as<std::string>());
      for (const auto& ph : c.phases) {
        const auto all = gwx::bench::default_compare_phases();
        if (std::find(all.begin(), all.end(), ph) == all.end()) {
          gwx::die("gwx-bench",
                   "--phases: unknown phase '" + ph + "' (echo8, echo1, fanout, idle, connect)",
                   k_usage);
        }
      }
      if (c.rounds == 0 || c.phases.empty()) {
        gwx::die("gwx-bench", "--rounds and --phases must not be empty", k_usage);
      }
      c.receivers = vm["receivers"].as<std::size_t>();
      c.idle_connections = vm["idle-connections"].as<std::size_t>();
      c.idle_per_process = vm["per-process"].as<std::size_t>();
      c.self = self_path();
      c.bin_dir = vm.count("bin") != 0U ? vm["bin"].as<std::string>()
                                        : std::filesystem::path(c.self).parent_path().string();
      if (vm.count("gateway-threads") != 0U) {
        c.gateway_threads = vm["gateway-threads"].as<unsigned>();
      }
      if (vm.count("worker-threads") != 0U) {
        c.worker_threads = vm["worker-threads"].as<unsigned>();
      }
      c.json = json;
      make_log_dir();
      c.log_dir = log_dir;
      std::cerr << "gwx-bench: compare: logs of the started processes in " << log_dir << "\n";
      return gwx::bench::run_compare(c);
    }

    if (mode != "echo" && mode != "idle" && mode != "fanout" && mode != "connect" &&
        mode != "idle-hold") {
      gwx::die("gwx-bench",
               "unknown mode '" + mode + "' (echo, idle, fanout, connect, reference, compare)",
               k_usage);
    }
    if (words.size() != 2) {
      gwx::die("gwx-bench",
               mode + " needs exactly one URL, e.g. gwx-bench " + mode + " ws://127.0.0.1:8080/",
               k_usage);
    }
    try {
      opt.url = gwx::bench::parse_target_url(words[1]);
    } catch (const std::exception& e) {
      gwx::die("gwx-bench", e.what(), k_usage);
    }
    if (opt.url.tls && mode != "idle" && mode != "idle-hold") {
      gwx::die("gwx-bench", "TLS URLs (wss://, tls+…) are measured by idle only", k_usage);
    }
    gwx::bench::run_result r;
    if (mode == "idle-hold") {
      opt.read_buffer = 256;
      return gwx::bench::hold_idle_main(opt);
    }
    if (mode == "echo") {
      r = gwx::bench::run_echo(opt);
    } else if (mode == "fanout") {
      opt.connections = vm["receivers"].as<std::size_t>();
      r = gwx::bench::run_fanout(opt);
    } else if (mode == "connect") {
      r = gwx::bench::run_connect(opt);
    } else {
      make_log_dir();
      r = gwx::bench::run_idle(opt, std::max<std::size_t>(1, vm["per-process"].as<std::size_t>()),
                               self_path(), log_dir);
    }
    std::cout << (json ? gwx::bench::format_json(r) : gwx::bench::format_line(r)) << std::endl;
    return r.errors > 0 ? 1 : 0;
  } catch (const std::exception& e) {
    gwx::die("gwx-bench", mode + ": " + e.what(), 1);
  }
}
