// gwx-worker: runs one business app (built-in or from a shared library) against every gateway
// the registers list. Everything but option parsing and signal handling lives in the SDK.
#include <pthread.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <mutex>

#include "common/options.hpp"
#include "worker/sdk/app_loader.hpp"
#include "worker/sdk/worker.hpp"

namespace {

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
  gwx::option_parser parser(
      "gwx-worker",
      "gwx-worker --register HOST:PORT[,HOST:PORT...] --secret S --app NAME|PATH [options]",
      "Runs business handlers for a gwx cluster: links to every gateway the registers list and\n"
      "calls the app for each client event. Built-in apps: echo, chat, commands; or a shared\n"
      "library built with GWX_APP (--app ./libmyapp.so). Prints 'linked ADDRESS' and\n"
      "'unlinked ADDRESS' on stdout as gateway links come and go. SIGINT/SIGTERM stop it.");
  parser.options().add_options()(
      "register", gwx::po::value<std::string>()->required()->value_name("HOST:PORT[,...]"),
      "registers to watch for gateways (comma-separated)")(
      "secret", gwx::po::value<std::string>()->required()->value_name("S"),
      "link secret shared with the gateways")(
      "app", gwx::po::value<std::string>()->required()->value_name("NAME|PATH"),
      "built-in app (echo, chat, commands) or path to an app library")(
      "threads", gwx::po::value<unsigned>()->default_value(1)->value_name("N"),
      "handler threads (a client's events always run on the same one)")(
      "name", gwx::po::value<std::string>()->value_name("NAME"),
      "worker name shown by gateways (default worker-HOST-PID)")(
      "token", gwx::po::value<std::string>()->default_value("")->value_name("T"),
      "register access token")("query-timeout-ms",
                               gwx::po::value<unsigned>()->default_value(3000)->value_name("N"),
                               "default timeout of Gateway API queries")(
      "keepalive-interval-ms", gwx::po::value<unsigned>()->default_value(1000)->value_name("N"),
      "link keepalive ping interval")(
      "keepalive-timeout-ms", gwx::po::value<unsigned>()->default_value(5000)->value_name("N"),
      "drop a gateway link silent for this long");
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
  options.cluster.name = vm.count("name") != 0U ? vm["name"].as<std::string>() : default_name();
  options.threads = std::max(1U, vm["threads"].as<unsigned>());
  options.cluster.query_timeout = std::chrono::milliseconds(vm["query-timeout-ms"].as<unsigned>());
  options.cluster.keepalive_interval =
      std::chrono::milliseconds(vm["keepalive-interval-ms"].as<unsigned>());
  options.cluster.keepalive_timeout =
      std::chrono::milliseconds(vm["keepalive-timeout-ms"].as<unsigned>());
  options.on_link_change = [](const std::string& address, bool up) {
    // One line per change, flushed: scripts and tests wait for these.
    static std::mutex stdout_mutex;
    std::lock_guard lock(stdout_mutex);
    std::printf("%s %s\n", up ? "linked" : "unlinked", address.c_str());
    std::fflush(stdout);
  };

  const auto app_name = vm["app"].as<std::string>();
  std::unique_ptr<gwx::handler> app;
  try {
    app = gwx::load_app(app_name);
  } catch (const std::exception& e) {
    gwx::die("gwx-worker", e.what(), 1);
  }

  // Block the stop signals in every thread (they inherit the mask) and take them here.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  gwx::worker w(std::move(options), std::move(app));
  spdlog::info("starting app '{}' with {} handler thread(s)", app_name,
               vm["threads"].as<unsigned>());
  w.start();
  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  spdlog::info("{} received, stopping", signal_number == SIGINT ? "SIGINT" : "SIGTERM");
  w.stop();
  spdlog::info("stopped");
  return 0;
}
