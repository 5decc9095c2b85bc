// gwx-gateway: holds client connections and forwards their events to workers.
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <asio.hpp>
#include <csignal>
#include <iostream>
#include <thread>

#include "common/memory_return.hpp"
#include "common/metrics/exposer.hpp"
#include "common/metrics/process_collector.hpp"
#include "common/metrics/registry.hpp"
#include "common/options.hpp"
#include "common/registry/grpc_exit.hpp"
#include "common/tls_options.hpp"
#include "gateway/client_session.hpp"
#include "gateway/gateway_server.hpp"

namespace {

std::string host_name() {
  char buf[256] = {};
  return gethostname(buf, sizeof buf - 1) == 0 ? std::string(buf) : std::string("gateway");
}

}  // namespace

int main(int argc, char** argv) {
  // Destroyed last: returns only once gRPC has finished shutting down (see grpc_exit.hpp).
  gwx::registry::grpc_exit_wait grpc_exit;
  // OpenSSL writes TLS records with write(2): a client gone mid-write must be an error code,
  // not a signal that ends the process.
  std::signal(SIGPIPE, SIG_IGN);
  using gwx::po::value;
  gwx::option_parser parser(
      "gwx-gateway",
      "gwx-gateway --secret S [--register HOST:PORT[,...]] [--listen URL]... [--internal "
      "HOST:PORT]",
      "Holds client connections (WebSocket and TCP) with their sessions, uids and groups, and\n"
      "forwards their events to the workers linked to its internal listener. Registers itself\n"
      "with every register given so workers find it.\n\n"
      "Listener URLs: ws://HOST:PORT[/path], tcp+line://HOST:PORT, tcp+frame://HOST:PORT,\n"
      "tcp+raw://HOST:PORT, and over TLS wss://HOST:PORT[/path], tls+line://, tls+frame://,\n"
      "tls+raw://. Port 0 picks a free port; the bound addresses are printed as\n"
      "'listening URL' lines. Per-listener settings override the flags below as URL query\n"
      "parameters: max_message, max_connections, max_handshakes_per_ip, send_buffer,\n"
      "slow_client, handshake_timeout_ms, idle_timeout_ms, heartbeat_interval_ms,\n"
      "heartbeat_missed, heartbeat_data, origins (comma list), ask=1 (wait for the worker's\n"
      "on_websocket_connect decision before answering 101), and for TLS listeners tls_cert,\n"
      "tls_key (comma lists, paired by position), tls_client_ca,\n"
      "tls_client_auth=none|optional|require.\n"
      "Example: --listen 'ws://0.0.0.0:8080/chat?max_message=65536&origins=https://a.example'\n\n"
      "TLS: 1.2 and 1.3 only, ECDHE with AES-GCM or ChaCha20-Poly1305, ALPN http/1.1 on wss.\n"
      "Several certificates (repeat --tls-cert/--tls-key, or comma lists in the URL) are chosen\n"
      "by the name a client asks for (SNI) among each certificate's DNS names; the first one\n"
      "answers clients that ask for no name or an unknown one. SIGHUP reads every certificate,\n"
      "key and CA file again (listeners', --link-tls-* and --register-tls-*): new connections\n"
      "and links get the new certificates, open ones are untouched, and a file that does not\n"
      "load keeps the previous certificates (one error line).");
  const unsigned cores = std::max(1U, std::thread::hardware_concurrency());
  // One loop per core, except on one or two cores: there a second loop costs more than it
  // brings (measured, docs/benchmarks.md: half the messages cross between the client's loop and
  // the link's loop twice, and the loops compete with the workers and everything else for the
  // same two cores), so one loop serves every client.
  const unsigned default_threads = cores > 2 ? cores : 1;
  // clang-format off
  parser.options().add_options()
      ("register", value<std::string>()->default_value("127.0.0.1:7700")->value_name("LIST"),
       "register addresses, comma-separated HOST:PORT")
      ("token", value<std::string>()->default_value("")->value_name("T"),
       "shared token the registers require (never sent in clear)")
      ("listen", value<std::vector<std::string>>()
                     ->default_value({"ws://127.0.0.1:8080/"}, "ws://127.0.0.1:8080/")
                     ->value_name("URL"),
       "public listener URL; repeat for several")
      ("internal", value<std::string>()->default_value("127.0.0.1:7800")->value_name("HOST:PORT"),
       "internal listener for worker and push-client links")
      ("advertise", value<std::string>()->default_value("")->value_name("IP:PORT"),
       "address workers use to reach --internal (default: the bound internal address)")
      ("secret", value<std::string>()->default_value("")->value_name("S"),
       "shared secret of the gateway<->worker links (required; prefer GWX_SECRET or --config "
       "over the command line, which other users can see)")
      ("name", value<std::string>()->default_value(host_name())->value_name("NAME"),
       "name shown to operators")
      ("threads", value<std::size_t>()->default_value(default_threads)->value_name("N"),
       "event loops (one thread each; default: one per core, 1 on a machine with 1 or 2 cores)")
      ("io-uring", value<std::string>()->default_value("on")->value_name("on|off"),
       "on: each event loop hands the client writes of one turn (a broadcast's hundreds, an "
       "echo burst's replies) to the kernel in one io_uring call instead of one system call "
       "each, and the reads of the clients found readable in one turn in another; where "
       "io_uring is unavailable (old kernel, kernel.io_uring_disabled, a seccomp filter) the "
       "gateway says so once at start and makes one sendmsg() or recvfrom() each. off: "
       "always one system call each")
      ("max-message", value<std::size_t>()->default_value(1 << 20)->value_name("BYTES"),
       "largest client message, at most 66060288 (63 MiB; WebSocket: larger closes with 1009)")
      ("max-connections", value<std::size_t>()->default_value(1000000)->value_name("N"),
       "client connections per listener (all listeners together also stay 512 under the "
       "open-file limit, raised to its hard limit at start, so links always find a descriptor)")
      ("max-handshakes-per-ip", value<std::size_t>()->default_value(256)->value_name("N"),
       "connections from one client address, per listener, that have not finished their TLS "
       "handshake, WebSocket upgrade or ask=1 decision (IPv4-mapped IPv6 counts as IPv4, IPv6 by "
       "its /64 network); more "
       "from that address are refused like those over --max-connections. 1..100000000, no 0 "
       "(off): a value as large as --max-connections never refuses")
      ("send-buffer", value<std::size_t>()->default_value(4 << 20)->value_name("BYTES"),
       "unsent bytes a client may accumulate before --slow-client applies")
      ("slow-client", value<std::string>()->default_value("close")->value_name("POLICY"),
       "close: close a client over its send buffer; drop: drop messages to it")
      ("handshake-timeout-ms", value<std::size_t>()->default_value(10000)->value_name("MS"),
       "time a WebSocket client has to complete its upgrade (and the worker to decide)")
      ("idle-timeout-ms", value<std::size_t>()->default_value(0)->value_name("MS"),
       "close a client silent this long (0: never)")
      ("heartbeat-interval-ms", value<std::size_t>()->default_value(0)->value_name("MS"),
       "ping clients at this interval (WebSocket ping; TCP: --heartbeat-data) (0: off)")
      ("heartbeat-missed", value<unsigned>()->default_value(0)->value_name("N"),
       "close a client that stays silent for N heartbeat intervals (0: never)")
      ("heartbeat-data", value<std::string>()->default_value("")->value_name("TEXT"),
       "payload of each heartbeat (TCP clients get it as a message; empty: none)")
      ("tls-cert", value<std::vector<std::string>>()->value_name("PEM"),
       "certificate chain (leaf first) of the wss:// and tls+… listeners; repeat, paired with "
       "--tls-key by position, for several names chosen by SNI (the first is the default)")
      ("tls-key", value<std::vector<std::string>>()->value_name("PEM"),
       "private key of each --tls-cert (PEM, not encrypted)")
      ("tls-client-ca", value<std::string>()->default_value("")->value_name("PEM"),
       "ask TLS clients for a certificate signed by this CA; its subject and SANs reach the "
       "worker with the connect event")
      ("tls-client-auth", value<std::string>()->default_value("")->value_name("MODE"),
       "none, optional (a client without a certificate gets in; one with a certificate that "
       "does not verify does not) or require; default: require with --tls-client-ca, else "
       "none")
      ("lease-ttl-ms", value<std::size_t>()->default_value(6000)->value_name("MS"),
       "register lease; renewed every third of it")
      ("link-keepalive-interval-ms", value<std::size_t>()->default_value(1000)->value_name("MS"),
       "ping worker links at this interval")
      ("link-keepalive-timeout-ms", value<std::size_t>()->default_value(5000)->value_name("MS"),
       "drop a worker link silent this long; its unacknowledged events go to another worker")
      ("delivery", value<std::string>()->default_value("at-least-once")->value_name("MODE"),
       "at-least-once: keep each client event until a worker acknowledges it and hand it to "
       "another worker if that one goes away (flagged redelivered); at-most-once: never resend")
      ("queue-max-events", value<std::size_t>()->default_value(1000)->value_name("N"),
       "events one client may have queued while no worker can take them")
      ("queue-max-bytes", value<std::size_t>()->default_value(1 << 20)->value_name("BYTES"),
       "bytes of events one client may have queued")
      ("queue-max-age-ms", value<std::size_t>()->default_value(60000)->value_name("MS"),
       "age past which a queued event is over its bound")
      ("inflight-max-events", value<std::size_t>()->default_value(64)->value_name("N"),
       "events of one client sent to its worker and not yet acknowledged; past it (or while the "
       "worker's link is backpressured) the client's events wait and reading from it pauses")
      ("inflight-max-bytes", value<std::size_t>()->default_value(1 << 20)->value_name("BYTES"),
       "bytes of one client's events sent and not yet acknowledged (one event always fits)")
      ("unfinished-max-bytes", value<std::size_t>()->default_value(std::size_t{1} << 30)
                                   ->value_name("BYTES"),
       "bytes of unfinished client messages (a message still arriving) all clients may hold "
       "together, shared equally by the loops; past it the clients whose unfinished message is "
       "the oldest are closed first (WebSocket 1013, counted as overload), so a client that never "
       "finishes its message cannot keep others' out. Each loop's share must hold the largest "
       "max_message")
      ("event-max-attempts", value<unsigned>()->default_value(3)->value_name("N"),
       "an event handed out this many times to workers that all went away before acknowledging "
       "it is dropped (quarantined: counted, logged), never replayed forever")
      ("queue-policy", value<std::string>()->default_value("drop-oldest")->value_name("POLICY"),
       "past a queue bound: drop-oldest (counted, logged once per interval) or close (that "
       "client, with a reason)")
      ("goodbye", value<std::string>()->default_value("")->value_name("TEXT"),
       "on shutdown, sent to TCP clients before their connection closes (WebSocket clients get "
       "close 1001)")
      ("metrics", value<std::string>()->value_name("HOST:PORT"),
       "serve Prometheus metrics at http://HOST:PORT/metrics (port 0 picks a free one); "
       "default: none, no metrics endpoint")
      ("memory-return-mib", value<std::size_t>()->default_value(32)->value_name("MIB"),
       "give freed heap memory back to the system (checked every 5 s) once more than this many "
       "MiB of it are held, as after a burst of clients that stopped reading; otherwise the "
       "allocator keeps it and the gateway's resident size stays at its peak. 0: never")
      ("shutdown-timeout-ms", value<std::size_t>()->default_value(5000)->value_name("MS"),
       "on SIGTERM, how long to wait for clients to go and workers to acknowledge their last "
       "events")
      ("bus", value<std::string>()->default_value("")->value_name("URL"),
       "subscribe to a push bus (JSON commands, at-most-once): "
       "redis://[USER:PASSWORD@]HOST:PORT/CHANNEL, or "
       "amqp://USER:PASSWORD@HOST:PORT/VHOST?exchange=NAME&mode=fanout|routed (routed: this "
       "gateway binds 'all', its client key and uid.<uid>/group.<group> for what its clients "
       "hold); the password is never logged; default: no bus")
      ("bus-max-message", value<std::size_t>()->default_value(1 << 20)->value_name("BYTES"),
       "largest bus message; larger ones are refused unread (counted, logged)")
      ("bus-max-pending", value<std::size_t>()->default_value(64 << 20)->value_name("BYTES"),
       "bytes of bus commands waiting for the event loops; past it bus messages are dropped "
       "(counted)")
      ("bus-queue-max-bytes", value<std::size_t>()->default_value(64 << 20)->value_name("BYTES"),
       "AMQP: bytes the broker may hold in this gateway's queue (oldest dropped past it)");
  // clang-format on
  gwx::add_register_tls_options(parser.options());
  gwx::add_link_tls_options(parser.options());
  gwx::gateway::gateway_config cfg;
  std::optional<gwx::host_port> metrics_listen;
  // The listeners: their URLs and per-listener settings over the gateway-wide ones, a
  // certificate for every TLS listener. --print-config checks the URLs (`start` false: other
  // values are shown as they are, and certificate files are not read: it may run where they
  // are not).
  const auto listeners_of = [](const gwx::po::variables_map& vm, bool start) {
    std::vector<gwx::gateway::listener_config> listeners;
    gwx::gateway::listener_config defaults;
    defaults.max_message = vm["max-message"].as<std::size_t>();
    if (defaults.max_message == 0 || defaults.max_message > gwx::gateway::k_max_client_message) {
      throw std::invalid_argument("--max-message must be 1.." +
                                  std::to_string(gwx::gateway::k_max_client_message) +
                                  " bytes (a message goes to a worker in one 64 MiB link frame)");
    }
    defaults.max_connections = vm["max-connections"].as<std::size_t>();
    defaults.max_handshakes_per_ip = vm["max-handshakes-per-ip"].as<std::size_t>();
    if (defaults.max_handshakes_per_ip == 0 || defaults.max_handshakes_per_ip > 100000000) {
      throw std::invalid_argument(
          "--max-handshakes-per-ip must be 1..100000000 (0 is not 'off': a value as large as "
          "--max-connections never refuses)");
    }
    defaults.send_buffer = vm["send-buffer"].as<std::size_t>();
    const auto slow = vm["slow-client"].as<std::string>();
    if (start && slow != "close" && slow != "drop") {
      throw std::invalid_argument("--slow-client must be close or drop");
    }
    defaults.on_slow =
        slow == "drop" ? gwx::gateway::slow_policy::drop : gwx::gateway::slow_policy::close;
    defaults.handshake_timeout =
        std::chrono::milliseconds(vm["handshake-timeout-ms"].as<std::size_t>());
    defaults.idle_timeout = std::chrono::milliseconds(vm["idle-timeout-ms"].as<std::size_t>());
    defaults.heartbeat_interval =
        std::chrono::milliseconds(vm["heartbeat-interval-ms"].as<std::size_t>());
    defaults.heartbeat_missed = vm["heartbeat-missed"].as<unsigned>();
    defaults.heartbeat_data = vm["heartbeat-data"].as<std::string>();
    auto& tls = defaults.tls_files;
    if (vm.count("tls-cert") != 0U) {
      tls.certs = vm["tls-cert"].as<std::vector<std::string>>();
    }
    if (vm.count("tls-key") != 0U) {
      tls.keys = vm["tls-key"].as<std::vector<std::string>>();
    }
    tls.client_ca = vm["tls-client-ca"].as<std::string>();
    tls.client_auth = vm["tls-client-auth"].as<std::string>();
    if (start && !tls.client_auth.empty() && tls.client_auth != "none" &&
        tls.client_auth != "optional" && tls.client_auth != "require") {
      throw std::invalid_argument("--tls-client-auth must be none, optional or require");
    }
    for (const auto& url : vm["listen"].as<std::vector<std::string>>()) {
      listeners.push_back(gwx::gateway::parse_listener_url(url, defaults));
    }
    return listeners;
  };
  // Everything the options mean, checked before the gateway starts (which loads the
  // certificate files too).
  const auto configure = [&cfg, &metrics_listen, &listeners_of](const gwx::po::variables_map& vm) {
    cfg = {};
    metrics_listen.reset();
    if (vm.count("metrics") != 0U && !vm["metrics"].as<std::string>().empty()) {
      metrics_listen = gwx::parse_host_port(vm["metrics"].as<std::string>());
    }
    cfg.registers = gwx::parse_host_port_list(vm["register"].as<std::string>());
    cfg.register_token = vm["token"].as<std::string>();
    cfg.register_tls = gwx::register_tls_from(vm);
    cfg.link_tls = gwx::link_tls_from(vm);
    cfg.internal = gwx::parse_host_port(vm["internal"].as<std::string>());
    cfg.advertise = vm["advertise"].as<std::string>();
    cfg.secret = vm["secret"].as<std::string>();
    cfg.name = vm["name"].as<std::string>();
    cfg.threads = vm["threads"].as<std::size_t>();
    cfg.lease_ttl = std::chrono::milliseconds(vm["lease-ttl-ms"].as<std::size_t>());
    cfg.link_keepalive_interval =
        std::chrono::milliseconds(vm["link-keepalive-interval-ms"].as<std::size_t>());
    cfg.link_keepalive_timeout =
        std::chrono::milliseconds(vm["link-keepalive-timeout-ms"].as<std::size_t>());
    const auto delivery = vm["delivery"].as<std::string>();
    if (delivery != "at-least-once" && delivery != "at-most-once") {
      throw std::invalid_argument("--delivery must be at-least-once or at-most-once");
    }
    cfg.at_most_once = delivery == "at-most-once";
    cfg.io_uring = gwx::on_off(vm, "io-uring");
    cfg.queue_max_events = vm["queue-max-events"].as<std::size_t>();
    cfg.queue_max_bytes = vm["queue-max-bytes"].as<std::size_t>();
    cfg.queue_max_age = std::chrono::milliseconds(vm["queue-max-age-ms"].as<std::size_t>());
    cfg.inflight_max_events = vm["inflight-max-events"].as<std::size_t>();
    cfg.inflight_max_bytes = vm["inflight-max-bytes"].as<std::size_t>();
    cfg.event_max_attempts = vm["event-max-attempts"].as<unsigned>();
    if (cfg.inflight_max_events == 0 || cfg.inflight_max_bytes == 0 ||
        cfg.event_max_attempts == 0 || cfg.event_max_attempts > 255) {
      throw std::invalid_argument(
          "--inflight-max-* must be positive and --event-max-attempts within 1..255");
    }
    const auto policy = vm["queue-policy"].as<std::string>();
    if (policy != "drop-oldest" && policy != "close") {
      throw std::invalid_argument("--queue-policy must be drop-oldest or close");
    }
    cfg.queue_close_client = policy == "close";
    cfg.goodbye = vm["goodbye"].as<std::string>();
    cfg.shutdown_timeout = std::chrono::milliseconds(vm["shutdown-timeout-ms"].as<std::size_t>());
    if (cfg.queue_max_events == 0 || cfg.queue_max_bytes == 0 || cfg.queue_max_age.count() == 0) {
      throw std::invalid_argument("queue bounds must be positive");
    }
    cfg.listeners = listeners_of(vm, true);
    for (auto& l : cfg.listeners) {
      gwx::gateway::load_listener_tls(l);
    }
    if (cfg.secret.empty()) {
      throw std::invalid_argument("--secret is required (the secret shared with workers)");
    }
    if (const auto bus = vm["bus"].as<std::string>(); !bus.empty()) {
      gwx::gateway::bus_config bc;
      bc.url = gwx::bus::parse_bus_url(bus);
      bc.max_message = vm["bus-max-message"].as<std::size_t>();
      bc.broker_queue_max_bytes = vm["bus-queue-max-bytes"].as<std::size_t>();
      if (bc.max_message == 0 || bc.broker_queue_max_bytes == 0) {
        throw std::invalid_argument("--bus-max-message and --bus-queue-max-bytes must be positive");
      }
      cfg.bus = std::move(bc);
    }
    cfg.bus_max_pending = vm["bus-max-pending"].as<std::size_t>();
    if (cfg.threads == 0 || cfg.threads > 255) {
      throw std::invalid_argument("--threads must be between 1 and 255");
    }
    cfg.unfinished_max_bytes = vm["unfinished-max-bytes"].as<std::size_t>();
    const std::size_t share = cfg.unfinished_max_bytes / cfg.threads;
    for (const auto& l : cfg.listeners) {
      if (const auto most = gwx::gateway::client_session::most_unfinished(l); share < most) {
        throw std::invalid_argument(
            "--unfinished-max-bytes " + std::to_string(cfg.unfinished_max_bytes) + " leaves " +
            std::to_string(share) + " bytes to each of " + std::to_string(cfg.threads) +
            " loops, too little for one message of " + l.url + " (max_message " +
            std::to_string(l.max_message) + " and its framing and read: " + std::to_string(most) +
            " bytes)");
      }
    }
  };
  parser.add_print_check(
      [&listeners_of](const gwx::po::variables_map& vm) { listeners_of(vm, false); });
  const auto vm = parser.parse(argc, argv);
  try {
    configure(vm);
  } catch (const std::exception& e) {
    gwx::die(parser.program(), e.what(), 2);
  }

  // The registry outlives the server (whose callbacks it calls) and the exposer (which reads it).
  gwx::metrics::registry metrics;
  std::optional<gwx::metrics::process_collector> process_metrics;
  std::unique_ptr<gwx::metrics::exposer> exposer;
  try {
    if (metrics_listen) {
      process_metrics.emplace(metrics);
      cfg.metrics = &metrics;
    }
    const std::size_t memory_return = vm["memory-return-mib"].as<std::size_t>() << 20;
    gwx::bound_allocator_tops(memory_return);
    gwx::gateway::gateway_server server(std::move(cfg));
    server.start();
    if (metrics_listen) {
      exposer = std::make_unique<gwx::metrics::exposer>(metrics, *metrics_listen);
    }
    for (const auto& url : server.bound_urls()) {
      std::cout << "listening " << url << std::endl;
      spdlog::info("listening {}", url);
    }
    if (exposer) {
      std::cout << "listening metrics://" << exposer->address() << std::endl;
      spdlog::info("metrics at http://{}/metrics", exposer->address());
    }
    // The main thread waits for signals and, meanwhile, gives back what bursts freed.
    asio::io_context signals_io;
    gwx::memory_returner memory(signals_io, memory_return);
    memory.start();
    asio::signal_set signals(signals_io, SIGINT, SIGTERM, SIGHUP);
    std::function<void(std::error_code, int)> on_signal = [&](std::error_code ec, int sig) {
      if (!ec && sig == SIGHUP) {
        spdlog::info("SIGHUP: reloading certificates");
        server.reload_tls();
        signals.async_wait(on_signal);
        return;
      }
      spdlog::info("signal {}: shutting down", sig);
      memory.stop();
    };
    signals.async_wait(on_signal);
    signals_io.run();
    if (exposer) {
      exposer->stop();
    }
    server.stop();
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    gwx::die(parser.program(), e.what(), 1);
  }
  return 0;
}
