// gwx-register: parse options, start the register, reload its certificates on SIGHUP, wait for
// SIGINT/SIGTERM, shut down.
#include <grpc/support/log.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <stdexcept>

#include "common/metrics/exposer.hpp"
#include "common/metrics/process_collector.hpp"
#include "common/metrics/registry.hpp"
#include "common/net/endpoint.hpp"
#include "common/options.hpp"
#include "common/registry/grpc_exit.hpp"
#include "common/tls_options.hpp"
#include "register/register_server.hpp"

namespace {

constexpr const char* k_program = "gwx-register";

std::atomic<bool> g_serving{false};

// gRPC's own log lines go through spdlog. Until the server is up they are debug only, so a
// failed bind reads as our one clear line rather than gRPC's internal trace.
void grpc_log(gpr_log_func_args* args) {
  const bool error = args->severity == GPR_LOG_SEVERITY_ERROR;
  spdlog::log(error && g_serving.load() ? spdlog::level::warn : spdlog::level::debug,
              "grpc: {} ({}:{})", args->message, args->file, args->line);
}

// A whole number option within [low, high], or exit 2 naming it.
std::size_t bounded(const gwx::po::variables_map& vm, const char* name, long long low,
                    long long high) {
  const auto value = vm[name].as<long long>();
  if (value < low || value > high) {
    gwx::die(
        k_program,
        std::string("--") + name + " must be " + std::to_string(low) + ".." + std::to_string(high),
        2);
  }
  return static_cast<std::size_t>(value);
}

std::chrono::milliseconds positive_ms(const gwx::po::variables_map& vm, const char* name) {
  const auto value = vm[name].as<long long>();
  if (value < 1 || value > 24LL * 3600 * 1000) {
    gwx::die(k_program,
             std::string("--") + name + " must be 1.." + std::to_string(24 * 3600 * 1000), 2);
  }
  return std::chrono::milliseconds(value);
}

// --tls-cert/--tls-key (together) and --tls-client-ca (only with them), loaded to check.
gwx::tls_files server_tls_from(const gwx::po::variables_map& vm) {
  const auto get = [&vm](const char* name) {
    return vm.count(name) != 0U ? vm[name].as<std::string>() : std::string();
  };
  gwx::tls_files tls{get("tls-cert"), get("tls-key"), get("tls-client-ca")};
  if (tls.cert.empty() != tls.key.empty()) {
    throw std::invalid_argument("--tls-cert and --tls-key go together");
  }
  if (tls.cert.empty() && !tls.ca.empty()) {
    throw std::invalid_argument("--tls-client-ca needs --tls-cert and --tls-key");
  }
  if (!tls.cert.empty()) {
    gwx::check_server_tls(tls, "--tls-*");
  }
  return tls;
}

}  // namespace

int main(int argc, char** argv) {
  // Destroyed last: returns only once gRPC has finished shutting down (see grpc_exit.hpp).
  gwx::registry::grpc_exit_wait grpc_exit;
  gwx::option_parser parser(
      k_program,
      "gwx-register [--listen HOST:PORT] [--token T] [--min-ttl-ms N] [--max-ttl-ms N] "
      "[--max-gateways N] [--peer-rate N] [--metrics HOST:PORT] [--tls-cert FILE --tls-key FILE "
      "[--tls-client-ca FILE]]",
      "The gwx register: gateways keep a lease here (Heartbeat), workers and push clients watch\n"
      "the live set (Watch). Run several side by side for redundancy. On start it prints\n"
      "'listening grpc://HOST:PORT' with the port actually bound (use port 0 for any free one),\n"
      "and 'listening metrics://HOST:PORT' when --metrics is set. With --tls-cert and --tls-key\n"
      "it serves gRPC over TLS only (callers need --register-tls-ca); the token, if set, is\n"
      "still required. SIGHUP reads --tls-cert, --tls-key and --tls-client-ca again: new\n"
      "connections get them, connections up (and their Watch streams) stay; a file that does\n"
      "not load leaves the previous ones in use, with one error line.");
  // clang-format off
  parser.options().add_options()
      ("listen", gwx::po::value<std::string>()->default_value("127.0.0.1:7700")
                     ->value_name("HOST:PORT"),
       "gRPC address to serve on; IPv6 as [addr]:port, port 0 picks a free one")
      ("token", gwx::po::value<std::string>()->value_name("TOKEN"),
       "shared token every caller must prove (HMAC, never sent); default: none, access open. "
       "Prefer GWX_TOKEN or the config file: flags show up in ps")
      ("auth-window-s", gwx::po::value<long long>()->default_value(60)->value_name("N"),
       "with --token: how far a caller's proof time may be from this clock, in s (each proof is "
       "also good for one call of one method only)")
      ("legacy-auth-window-s", gwx::po::value<long long>()->default_value(0)->value_name("N"),
       "with --token: also accept the older, replayable proofs (any method, reusable within "
       "N s) of gateways and workers not yet upgraded; 0 refuses them (set it back once they "
       "are upgraded)")
      ("min-ttl-ms", gwx::po::value<long long>()->default_value(1000)->value_name("N"),
       "shortest lease granted, in ms; shorter requests are raised to it")
      ("max-ttl-ms", gwx::po::value<long long>()->default_value(60000)->value_name("N"),
       "longest lease granted, in ms; longer requests are cut to it")
      ("max-gateways", gwx::po::value<long long>()->default_value(1024)->value_name("N"),
       "most gateways held at once; a new one beyond it is refused (RESOURCE_EXHAUSTED), "
       "renewals go on")
      ("max-gateways-per-peer", gwx::po::value<long long>()->default_value(64)->value_name("N"),
       "most gateways held for callers from one IP address (gateways behind one NAT share it)")
      ("max-entry-bytes", gwx::po::value<long long>()->default_value(4096)->value_name("N"),
       "largest gateway announcement accepted (id, address, name, listeners), in bytes; "
       "at most 65536")
      ("peer-rate", gwx::po::value<double>()->default_value(50)->value_name("N"),
       "calls per second allowed from one IP address on average, all RPCs together "
       "(a gateway makes one every third of its lease); 0: no limit")
      ("peer-burst", gwx::po::value<double>()->default_value(100)->value_name("N"),
       "calls allowed from one IP address at once, above the rate")
      ("max-watchers", gwx::po::value<long long>()->default_value(4096)->value_name("N"),
       "most Watch streams (one per worker and register) open at once; one beyond it is refused "
       "(RESOURCE_EXHAUSTED) and its watcher retries with backoff")
      ("max-watchers-per-peer", gwx::po::value<long long>()->default_value(256)->value_name("N"),
       "most Watch streams open for callers from one IP address")
      ("max-watch-backlog-bytes", gwx::po::value<long long>()->default_value(4 << 20)
                                      ->value_name("N"),
       "changes queued for one watcher that reads too slowly, in bytes; past it its stream is "
       "cut and it resyncs from a fresh snapshot when it reconnects")
      ("watch-write-timeout-s", gwx::po::value<long long>()->default_value(30)->value_name("N"),
       "a write to a watcher that makes no progress for N s (the watcher reads nothing) cancels "
       "its Watch stream and frees its slot; it resyncs when it reconnects")
      ("metrics", gwx::po::value<std::string>()->value_name("HOST:PORT"),
       "serve Prometheus metrics at http://HOST:PORT/metrics (port 0 picks a free one); "
       "default: none, no metrics endpoint")
      ("tls-cert", gwx::po::value<std::string>()->value_name("FILE"),
       "serve gRPC over TLS with this certificate chain (PEM, leaf first; its SANs must hold "
       "the names or IPs callers dial); default: none, plaintext gRPC")
      ("tls-key", gwx::po::value<std::string>()->value_name("FILE"),
       "private key (PEM) of --tls-cert")
      ("tls-client-ca", gwx::po::value<std::string>()->value_name("FILE"),
       "with --tls-cert: require every caller to present a certificate signed by this CA (PEM; "
       "callers set --register-tls-cert/--register-tls-key); default: no client certificate");
  // clang-format on
  const auto vm = parser.parse(argc, argv);

  gwx::host_port listen;
  try {
    listen = gwx::parse_host_port(vm["listen"].as<std::string>());
  } catch (const std::invalid_argument& e) {
    gwx::die(k_program, std::string("--listen: ") + e.what(), 2);
  }
  gwx::registry::register_config config;
  if (vm.count("token") != 0U) {
    config.token = vm["token"].as<std::string>();
  }
  const auto window = vm["auth-window-s"].as<long long>();
  if (window < 1 || window > 3600) {
    gwx::die(k_program, "--auth-window-s must be 1..3600", 2);
  }
  config.auth_window = std::chrono::seconds(window);
  config.legacy_auth_window = std::chrono::seconds(bounded(vm, "legacy-auth-window-s", 0, 3600));
  config.max_gateways = bounded(vm, "max-gateways", 1, 1000000);
  config.max_gateways_per_peer = bounded(vm, "max-gateways-per-peer", 1, 1000000);
  config.max_entry_bytes = bounded(vm, "max-entry-bytes", 256, 65536);
  config.max_watch_backlog_bytes = bounded(vm, "max-watch-backlog-bytes", 65536, 1LL << 30);
  config.watch_write_timeout = std::chrono::seconds(bounded(vm, "watch-write-timeout-s", 1, 3600));
  config.max_watchers = bounded(vm, "max-watchers", 1, 1000000);
  config.max_watchers_per_peer = bounded(vm, "max-watchers-per-peer", 1, 1000000);
  config.peer_rate = vm["peer-rate"].as<double>();
  config.peer_burst = vm["peer-burst"].as<double>();
  if (!(config.peer_rate >= 0 && config.peer_rate <= 1e6) ||
      !(config.peer_burst >= 1 && config.peer_burst <= 1e6)) {
    gwx::die(k_program, "--peer-rate must be 0..1000000 and --peer-burst 1..1000000", 2);
  }
  config.min_ttl = positive_ms(vm, "min-ttl-ms");
  config.max_ttl = positive_ms(vm, "max-ttl-ms");
  if (config.min_ttl > config.max_ttl) {
    gwx::die(k_program, "--min-ttl-ms must not exceed --max-ttl-ms", 2);
  }
  gwx::tls_files tls;
  try {
    tls = server_tls_from(vm);
  } catch (const std::exception& e) {
    gwx::die(k_program, e.what(), 2);
  }
  std::optional<gwx::host_port> metrics_listen;
  if (vm.count("metrics") != 0U && !vm["metrics"].as<std::string>().empty()) {
    const auto& text = vm["metrics"].as<std::string>();
    try {
      metrics_listen = gwx::parse_host_port(text);
    } catch (const std::invalid_argument& e) {
      gwx::die(k_program, std::string("--metrics: ") + e.what(), 2);
    }
  }

  // Block the stop signals and SIGHUP before gRPC starts its threads, so only sigwait below sees
  // them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  gpr_set_log_function(grpc_log);

  // The registry outlives the server (whose callbacks it calls) and the exposer (which reads it).
  gwx::metrics::registry metrics;
  std::optional<gwx::metrics::process_collector> process_metrics;
  std::unique_ptr<gwx::registry::register_server> server;
  std::unique_ptr<gwx::metrics::exposer> exposer;
  try {
    if (metrics_listen) {
      process_metrics.emplace(metrics);
    }
    server = std::make_unique<gwx::registry::register_server>(
        listen, config, metrics_listen ? &metrics : nullptr, tls);
    if (metrics_listen) {
      exposer = std::make_unique<gwx::metrics::exposer>(metrics, *metrics_listen);
    }
  } catch (const std::exception& e) {
    gwx::die(k_program, e.what(), 1);
  }
  g_serving = true;
  const auto address = server->address();
  std::cout << "listening grpc://" << address << std::endl;
  if (exposer) {
    std::cout << "listening metrics://" << exposer->address() << std::endl;
    spdlog::info("metrics at http://{}/metrics", exposer->address());
  }
  spdlog::info(
      "listening grpc://{} ({}, token {}, lease {}..{} ms, at most {} gateways, {} per address, "
      "{} bytes each, {} watchers, {} per address, {}/s per address{})",
      address,
      tls.cert.empty() ? "plaintext"
      : tls.ca.empty() ? "TLS"
                       : "TLS, client certificates required",
      config.token.empty() ? "off" : "on", config.min_ttl.count(), config.max_ttl.count(),
      config.max_gateways, config.max_gateways_per_peer, config.max_entry_bytes,
      config.max_watchers, config.max_watchers_per_peer, config.peer_rate,
      config.peer_rate > 0 ? "" : " (no limit)");
  if (config.token.empty()) {
    spdlog::warn(
        "OPEN REGISTER: no --token/GWX_TOKEN set, anyone who reaches {} can announce a fake "
        "gateway to every worker; set the same token on registers, gateways and workers",
        address);
  } else if (config.legacy_auth_window.count() > 0) {
    spdlog::warn(
        "--legacy-auth-window-s: older replayable token proofs are accepted; set it to 0 "
        "once every gateway and worker is upgraded");
  }

  int signal = 0;
  for (;;) {
    if (sigwait(&signals, &signal) != 0) {
      continue;
    }
    if (signal != SIGHUP) {
      break;
    }
    if (!server->tls()) {
      spdlog::info("SIGHUP: no --tls-cert, nothing to reload");
    } else if (const auto error = server->reload_tls()) {
      spdlog::error("register certificate reload failed, keeping the previous ones: {}", *error);
    } else {
      spdlog::info(
          "register certificates reloaded ({}): new connections get them within a second, "
          "connections up keep theirs",
          server->describe_tls());
    }
  }
  spdlog::info("{} received, shutting down", signal == SIGINT ? "SIGINT" : "SIGTERM");
  if (exposer) {
    exposer->stop();
  }
  server->shutdown(std::chrono::milliseconds(1000));
  spdlog::info("stopped");
  return EXIT_SUCCESS;
}
