// Pushes one text message to one client of a gwx cluster through gwx::Client, the way a web
// backend or a cron job would:
//   pusher REGISTERS SECRET CLIENT_ID MESSAGE
// Exits 0 once every gateway confirmed it processed the push; prints why otherwise and exits 1
// (2 on bad usage).
#include <chrono>
#include <cstdio>
#include <exception>
#include <string>

#include "common/cluster/client.hpp"

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: %s REGISTERS SECRET CLIENT_ID MESSAGE\n", argv[0]);
    return 2;
  }
  const std::string client_id = argv[3];
  try {
    gwx::Client client(argv[1], argv[2], /*token=*/"", "pusher");
    client.start();
    if (!client.wait_ready(std::chrono::seconds(15))) {
      std::fprintf(stderr, "pusher: the cluster was not ready within 15 s\n");
      return 1;
    }
    const auto online = client.is_online(client_id);
    if (!online.complete() || !online.value) {
      std::fprintf(stderr, "pusher: client %s is not online (error '%s', %zu gateway(s) silent)\n",
                   client_id.c_str(), online.error.message().c_str(),
                   online.missing_gateways.size());
      return 1;
    }
    client.send_to_client(client_id, argv[4]);
    const auto unconfirmed = client.flush(std::chrono::seconds(10));
    if (!unconfirmed.empty()) {
      std::fprintf(stderr, "pusher: %zu gateway(s) did not confirm the push\n", unconfirmed.size());
      return 1;
    }
    client.stop();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pusher: %s\n", e.what());
    return 1;
  }
  std::printf("pushed to %s\n", client_id.c_str());
  return 0;
}
