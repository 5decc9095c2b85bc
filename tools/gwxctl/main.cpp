// gwxctl: operate a gwx cluster from a shell. Lists gateways, shows stats, pushes to clients,
// queries presence and drains workers through the Gateway API, as a push client (gwx::Client).
#include <spdlog/spdlog.h>

#include <iostream>

#include "common/bus/push_options.hpp"
#include "common/cluster/client.hpp"
#include "common/options.hpp"
#include "common/registry/gateway_watcher.hpp"
#include "common/registry/grpc_exit.hpp"
#include "common/tls_options.hpp"
#include "tools/gwxctl/verbs.hpp"

namespace {

using gwx::ctl::k_failed;
using gwx::ctl::k_ok;
using gwx::ctl::k_usage;

int list_gateways(const std::vector<gwx::host_port>& registers, const std::string& token,
                  const gwx::tls_files& register_tls, std::chrono::milliseconds timeout) {
  gwx::registry::gateway_watcher watcher(registers, token, "gwxctl", nullptr, register_tls);
  watcher.start();
  if (!watcher.wait_for_snapshot(timeout)) {
    std::cerr << "gwxctl: no register answered within " << timeout.count() << " ms\n";
    return k_failed;
  }
  for (const auto& g : watcher.current()) {
    std::string listeners;
    for (const auto& l : g.listeners) {
      listeners += (listeners.empty() ? "" : ",") + l;
    }
    std::cout << g.gateway_id << " " << g.internal_address << " "
              << (listeners.empty() ? "-" : listeners) << (g.name.empty() ? "" : " " + g.name)
              << "\n";
  }
  std::cout.flush();
  watcher.stop();
  return k_ok;
}

}  // namespace

int main(int argc, char** argv) {
  // Destroyed last: returns only once gRPC has finished shutting down (see grpc_exit.hpp).
  gwx::registry::grpc_exit_wait grpc_exit;
  gwx::option_parser parser(
      "gwxctl", "gwxctl --register HOST:PORT[,...] [--secret S] [options] VERB ARGS...",
      "Operates a gwx cluster: lists gateways, shows stats, pushes to clients, queries\n"
      "presence and drains workers. Every verb but 'gateways' links to all gateways (needs\n"
      "--secret). Pushes wait until every linked gateway has processed them. Exit status: 0 ok,\n"
      "1 partial or failed (a gateway did not answer; 'drain': no gateway had that worker),\n"
      "2 bad command line.\n\nVerbs:\n" +
          gwx::ctl::verbs_help());
  parser.options().add_options()(
      "register", gwx::po::value<std::string>()->required()->value_name("HOST:PORT[,...]"),
      "registers to ask for the gateways (comma-separated)")(
      "secret", gwx::po::value<std::string>()->default_value("")->value_name("S"),
      "link secret shared with the gateways")(
      "token", gwx::po::value<std::string>()->default_value("")->value_name("T"),
      "register access token")("timeout-ms",
                               gwx::po::value<unsigned>()->default_value(3000)->value_name("N"),
                               "how long to wait for registers, links and answers")(
      "command", gwx::po::value<std::vector<std::string>>()->value_name("VERB ARGS..."),
      "what to do (positional; see Verbs)");
  gwx::add_register_tls_options(parser.options());
  gwx::add_link_tls_options(parser.options());
  parser.allow_positional("command");
  gwx::bus::add_push_options(parser.options());
  const auto vm = parser.parse(argc, argv);
  if (vm["log-level"].defaulted()) {
    spdlog::set_level(spdlog::level::warn);  // a shell tool: quiet unless asked
  }

  const auto words = vm.count("command") != 0U ? vm["command"].as<std::vector<std::string>>()
                                               : std::vector<std::string>{};
  if (words.empty()) {
    gwx::die("gwxctl", "missing VERB (see --help)", k_usage);
  }
  std::vector<gwx::host_port> registers;
  try {
    registers = gwx::parse_host_port_list(vm["register"].as<std::string>());
  } catch (const std::exception& e) {
    gwx::die("gwxctl", std::string("--register: ") + e.what(), k_usage);
  }
  const auto token = vm["token"].as<std::string>();
  gwx::tls_files register_tls;
  gwx::tls_files link_tls;
  try {
    register_tls = gwx::register_tls_from(vm);
    link_tls = gwx::link_tls_from(vm);
  } catch (const std::exception& e) {
    gwx::die("gwxctl", e.what(), k_usage);
  }
  const std::chrono::milliseconds timeout(vm["timeout-ms"].as<unsigned>());

  if (words[0] == "gateways") {
    return list_gateways(registers, token, register_tls, timeout);
  }
  const auto* verb = gwx::ctl::find_verb(words[0]);
  if (verb == nullptr) {
    gwx::die("gwxctl", "unknown verb '" + words[0] + "' (see --help)", k_usage);
  }
  if (words.size() - 1 < verb->min_args) {
    gwx::die("gwxctl", "usage: gwxctl " + verb->name + " " + verb->args, k_usage);
  }
  const auto secret = vm["secret"].as<std::string>();
  if (secret.empty()) {
    gwx::die("gwxctl", "--secret is required for '" + verb->name + "'", k_usage);
  }

  gwx::client_options options;
  options.registers = registers;
  options.secret = secret;
  options.token = token;
  options.register_tls = register_tls;
  options.link_tls = link_tls;
  options.name = "gwxctl";
  options.query_timeout = timeout;
  try {
    options.push_bus = gwx::bus::push_bus_of(vm);
  } catch (const std::exception& e) {
    gwx::die("gwxctl", e.what(), k_usage);
  }
  gwx::Client client(std::move(options));
  client.start();
  if (!client.wait_ready(timeout)) {
    const auto known = client.gateways();
    if (known.empty()) {
      std::cerr << "gwxctl: no register answered within " << timeout.count() << " ms\n";
      return k_failed;
    }
    // Go on with the gateways that are linked; the verb reports the others as missing.
    for (const auto& g : known) {
      if (!g.linked) {
        std::cerr << "gwxctl: gateway " << g.internal_address << " not linked\n";
      }
    }
  }
  int rc = k_failed;
  try {
    rc = verb->run(client, words, timeout);
  } catch (const std::invalid_argument& e) {
    std::cerr << "gwxctl: " << e.what() << "\n";
    rc = k_usage;
  }
  client.stop();
  return rc;
}
