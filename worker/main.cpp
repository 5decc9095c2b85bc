// gwx-worker: runs one business app (built-in or from a shared library) against every gateway
// the registers list. Everything but option parsing and signal handling lives in the SDK.
#include <pthread.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "common/bus/push_options.hpp"
#include "common/memory_return.hpp"
#include "common/metrics/exposer.hpp"
#include "common/metrics/process_collector.hpp"
#include "common/metrics/registry.hpp"
#include "common/options.hpp"
#include "common/registry/grpc_exit.hpp"
#include "common/tls_options.hpp"
#include "worker/sdk/app_loader.hpp"
#include "worker/sdk/metered_handler.hpp"
#include "worker/sdk/worker.hpp"

namespace {

// How long gwx-worker may take past its drain timeout to run on_worker_stop and close.
constexpr std::chrono::milliseconds k_exit_grace{10000};

// Why the worker should stop, from a signal or a gateway's drain request; the first wins.
class stop_request {
 public:
  void request(std::string reason) {
    std::lock_guard lock(mutex_);
    if (reason_.empty()) {
      reason_ = std::move(reason);
      changed_.notify_all();
    } else if (!finished_) {
      spdlog::info("{} while already draining ({}): the drain goes on", reason, reason_);
    }
  }
  std::string wait() {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [this] { return !reason_.empty(); });
    return reason_;
  }
  void finish() {
    std::lock_guard lock(mutex_);
    finished_ = true;
    changed_.notify_all();
  }
  bool wait_finished(std::chrono::milliseconds limit) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, limit, [this] { return finished_; });
  }
  bool finished() {
    std::lock_guard lock(mutex_);
    return finished_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::string reason_;
  bool finished_ = false;
};

std::string default_name() {
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) != 0) {
    host[0] = '\0';
  }
  return std::string("worker-") + (host[0] != '\0' ? host : "unknown") + "-" +
         std::to_string(getpid());
}

}  // namespace

int main(int argc, char** argv) {
  // Destroyed last: returns only once gRPC has finished shutting down (see grpc_exit.hpp).
  gwx::registry::grpc_exit_wait grpc_exit;
  gwx::option_parser parser(
      "gwx-worker",
      "gwx-worker --register HOST:PORT[,HOST:PORT...] --secret S --app NAME|PATH [options]",
      "Runs business handlers for a gwx cluster: links to every gateway the registers list and\n"
      "calls the app for each client event. Built-in apps: echo, chat, commands; or a shared\n"
      "library built with GWX_APP (--app ./libmyapp.so). Prints 'linked ADDRESS' and\n"
      "'unlinked ADDRESS' on stdout as gateway links come and go. SIGTERM/SIGINT, or a\n"
      "gateway relaying 'gwxctl drain NAME', make it drain: gateways route no new events to\n"
      "it, it handles what it has, flushes its pushes and acknowledgements, then exits 0.\n"
      "SIGHUP reads the --link-tls-* and --register-tls-* files again: new links and\n"
      "connections to the registers use them, those up stay; a file that does not load keeps\n"
      "the previous ones (one error line).");
  parser.options().add_options()(
      "register", gwx::po::value<std::string>()->required()->value_name("HOST:PORT[,...]"),
      "registers to watch for gateways (comma-separated)")(
      "secret", gwx::po::value<std::string>()->required()->value_name("S"),
      "link secret shared with the gateways")(
      "app", gwx::po::value<std::string>()->required()->value_name("NAME|PATH"),
      "built-in app (echo, chat, commands) or path to an app library")(
      "threads", gwx::po::value<unsigned>()->default_value(0)->value_name("N"),
      "handler threads; 0: handlers run on the network thread, with no hand-off per event "
      "(fastest; blocking Gateway API calls still work, but a handler must not block on "
      "anything else for long). N > 0: N handler threads, for handlers doing slow work (a "
      "client's events always run on the same one)")(
      "handler-queue-max-bytes",
      gwx::po::value<std::size_t>()
          ->default_value(gwx::worker_options{}.max_queued_bytes)
          ->value_name("BYTES"),
      "bytes of received events waiting for a handler (payloads plus 512 each); at this bound "
      "the worker stops reading the gateway links until half of it has run, so the gateways "
      "hold their clients back (a link with a query outstanding is read regardless)")(
      "handler-stall-warn-s", gwx::po::value<unsigned>()->default_value(10)->value_name("N"),
      "report a handler call still running after N seconds (0: never): a handler that never "
      "returns holds its clients' events and, once the handler queue is full, every link. The "
      "worker logs a warning every 10 s at most naming the thread, the event kind and how long "
      "the call has run, and gwx_worker_handlers_stalled counts such calls; it cannot end "
      "them")("name", gwx::po::value<std::string>()->value_name("NAME"),
              "worker name shown by gateways (default worker-HOST-PID)")(
      "token", gwx::po::value<std::string>()->default_value("")->value_name("T"),
      "register access token")("query-timeout-ms",
                               gwx::po::value<unsigned>()->default_value(3000)->value_name("N"),
                               "default timeout of Gateway API queries")(
      "keepalive-interval-ms", gwx::po::value<unsigned>()->default_value(1000)->value_name("N"),
      "link keepalive ping interval")(
      "keepalive-timeout-ms", gwx::po::value<unsigned>()->default_value(5000)->value_name("N"),
      "drop a gateway link silent for this long (a stopped gateway is detected within it)")(
      "drain-timeout-ms", gwx::po::value<unsigned>()->default_value(30000)->value_name("N"),
      "longest a drain may take before the worker exits regardless (what was left is logged)")(
      "memory-return-mib", gwx::po::value<std::size_t>()->default_value(32)->value_name("MIB"),
      "give freed heap memory back to the system (checked every 5 s) once more than this many "
      "MiB of it are held, as after a gateway that stopped reading made the worker hold its "
      "writes (up to 64 MiB per link); otherwise the allocator keeps it and the worker's "
      "resident size stays at its peak. 0: never")(
      "metrics", gwx::po::value<std::string>()->value_name("HOST:PORT"),
      "serve Prometheus metrics at http://HOST:PORT/metrics (port 0 picks a free one); "
      "default: none, no metrics endpoint");
  gwx::add_register_tls_options(parser.options());
  gwx::add_link_tls_options(parser.options());
  gwx::bus::add_push_options(parser.options());
  const auto vm = parser.parse(argc, argv);

  gwx::worker_options options;
  try {
    options.cluster.registers = gwx::parse_host_port_list(vm["register"].as<std::string>());
  } catch (const std::exception& e) {
    gwx::die("gwx-worker", std::string("--register: ") + e.what(), 2);
  }
  options.cluster.secret = vm["secret"].as<std::string>();
  if (options.cluster.secret.empty()) {
    gwx::die("gwx-worker", "--secret must not be empty", 2);
  }
  options.cluster.token = vm["token"].as<std::string>();
  try {
    options.cluster.register_tls = gwx::register_tls_from(vm);
    options.cluster.link_tls = gwx::link_tls_from(vm);
    options.cluster.push_bus = gwx::bus::push_bus_of(vm);
  } catch (const std::exception& e) {
    gwx::die("gwx-worker", e.what(), 2);
  }
  options.cluster.name = vm.count("name") != 0U ? vm["name"].as<std::string>() : default_name();
  options.threads = vm["threads"].as<unsigned>();
  options.max_queued_bytes = vm["handler-queue-max-bytes"].as<std::size_t>();
  if (options.max_queued_bytes == 0) {
    gwx::die("gwx-worker", "--handler-queue-max-bytes must be positive", 2);
  }
  options.handler_stall_warn = std::chrono::seconds(vm["handler-stall-warn-s"].as<unsigned>());
  options.cluster.query_timeout = std::chrono::milliseconds(vm["query-timeout-ms"].as<unsigned>());
  options.cluster.keepalive_interval =
      std::chrono::milliseconds(vm["keepalive-interval-ms"].as<unsigned>());
  options.cluster.keepalive_timeout =
      std::chrono::milliseconds(vm["keepalive-timeout-ms"].as<unsigned>());
  const std::chrono::milliseconds drain_timeout(vm["drain-timeout-ms"].as<unsigned>());
  options.drain_timeout = drain_timeout;
  stop_request stop;
  options.on_drain_request = [&stop](const std::string& address, const std::string& reason) {
    stop.request("asked by gateway " + address + ": " + reason);
  };
  options.on_link_change = [](const std::string& address, bool up) {
    // One line per change, flushed: scripts and tests wait for these.
    static std::mutex stdout_mutex;
    std::lock_guard lock(stdout_mutex);
    std::printf("%s %s\n", up ? "linked" : "unlinked", address.c_str());
    std::fflush(stdout);
  };

  std::optional<gwx::host_port> metrics_listen;
  if (vm.count("metrics") != 0U && !vm["metrics"].as<std::string>().empty()) {
    try {
      metrics_listen = gwx::parse_host_port(vm["metrics"].as<std::string>());
    } catch (const std::exception& e) {
      gwx::die("gwx-worker", std::string("--metrics: ") + e.what(), 2);
    }
  }
  const auto app_name = vm["app"].as<std::string>();
  std::unique_ptr<gwx::handler> app;
  try {
    app = gwx::load_app(app_name);
  } catch (const std::exception& e) {
    gwx::die("gwx-worker", e.what(), 1);
  }

  // Block the stop signals and SIGHUP in every thread (they inherit the mask); one thread takes
  // them. SIGHUP reloads the link certificates once the worker exists.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  std::atomic<gwx::worker*> reloadable{nullptr};
  std::thread signal_thread([&stop, &stop_signals, &reloadable] {
    while (!stop.finished()) {
      int signal_number = 0;
      if (sigwait(&stop_signals, &signal_number) != 0 || stop.finished()) {
        continue;
      }
      if (signal_number == SIGHUP) {
        if (auto* w = reloadable.load()) {
          spdlog::info("SIGHUP: reloading certificates");
          w->reload_tls();
        } else {
          spdlog::warn("SIGHUP during start-up ignored (certificates are being read)");
        }
        continue;
      }
      stop.request(signal_number == SIGINT ? "SIGINT" : "SIGTERM");
    }
  });

  // The registry outlives the worker (whose app counts into it) and the exposer (which reads it).
  gwx::metrics::registry metrics;
  std::optional<gwx::metrics::process_collector> process_metrics;
  if (metrics_listen) {
    process_metrics.emplace(metrics);
    app = std::make_unique<gwx::sdk::metered_handler>(std::move(app), metrics);
  }
  const std::size_t options_threads = options.threads;
  gwx::worker w(std::move(options), std::move(app));
  reloadable = &w;
  gwx::metrics::callback_registration links_metric;
  gwx::metrics::callback_registration pushes_dropped_metric;
  gwx::metrics::callback_registration stalled_metric;
  gwx::metrics::callback_registration skipped_metric;
  std::unique_ptr<gwx::metrics::exposer> exposer;
  if (metrics_listen) {
    links_metric = metrics
                       .add_callback_gauge("gwx_worker_gateway_links",
                                           "Gateways known, by link state.", {"state"})
                       .add({"linked"}, [&w] {
                         double n = 0;
                         for (const auto& g : w.gateways()) {
                           n += g.linked ? 1 : 0;
                         }
                         return n;
                       });
    pushes_dropped_metric =
        metrics
            .add_callback_counter(
                "gwx_worker_pushes_dropped_total",
                "Pushes dropped: their gateway's link held 64 MiB not yet sent, or "
                "64 MiB of writes were made before the worker started.",
                {})
            .add({}, [&w] { return static_cast<double>(w.pushes_dropped()); });
    stalled_metric =
        metrics
            .add_callback_gauge("gwx_worker_handlers_stalled",
                                "Handler calls running longer than --handler-stall-warn-s now.", {})
            .add({}, [&w] { return static_cast<double>(w.stalled_handlers()); });
    skipped_metric =
        metrics
            .add_callback_counter(
                "gwx_worker_events_skipped_total",
                "Events not run: their gateway link went down while they waited for a handler, "
                "and the gateway hands them to another worker (at-least-once).",
                {})
            .add({}, [&w] { return static_cast<double>(w.events_skipped()); });
    try {
      exposer = std::make_unique<gwx::metrics::exposer>(metrics, *metrics_listen);
    } catch (const std::exception& e) {
      gwx::die("gwx-worker", std::string("--metrics: ") + e.what(), 1);
    }
    std::printf("listening metrics://%s\n", exposer->address().c_str());
    std::fflush(stdout);
    spdlog::info("metrics at http://{}/metrics", exposer->address());
  }
  if (options_threads == 0) {
    spdlog::info("starting app '{}' with handlers on the network thread", app_name);
  } else {
    spdlog::info("starting app '{}' with {} handler thread(s)", app_name, options_threads);
  }
  const std::size_t memory_return = vm["memory-return-mib"].as<std::size_t>() << 20;
  gwx::bound_allocator_tops(memory_return);
  w.start();
  // A thread of its own gives back what bursts freed (the main thread waits for the stop).
  asio::io_context memory_io;
  gwx::memory_returner memory(memory_io, memory_return);
  memory.start();
  std::thread memory_thread([&memory_io] { memory_io.run(); });
  const auto reason = stop.wait();
  // The drain bounds its own waits, but a handler that never returns would hold the process:
  // past the drain timeout plus a grace for on_worker_stop and the last flush, exit anyway.
  std::thread watchdog([&stop, limit = drain_timeout + k_exit_grace] {
    if (!stop.wait_finished(limit)) {
      spdlog::error("still stopping after {} ms (a handler that does not return?); exiting",
                    limit.count());
      spdlog::shutdown();
      std::_Exit(1);
    }
  });
  w.drain(std::chrono::milliseconds::zero(), reason);
  w.stop();
  asio::post(memory_io, [&memory] { memory.stop(); });
  memory_thread.join();
  if (exposer) {
    exposer->stop();
  }
  links_metric = {};
  stop.finish();
  watchdog.join();
  // Wakes the signal thread's sigwait (a signal sent to that thread alone).
  pthread_kill(signal_thread.native_handle(), SIGTERM);
  signal_thread.join();
  spdlog::info("stopped");
  return 0;
}