// A program of one's own running a gwx::worker (gwx::sdk_static), with the handler compiled in
// instead of loaded by gwx-worker: the example app's GWX_APP entry point makes the handler.
//   own_worker REGISTERS SECRET NAME
// Prints `linked ADDRESS` / `unlinked ADDRESS` like gwx-worker; SIGTERM or SIGINT drain it, and
// it exits 0 when the drain completed.
#include <signal.h>

#include <cstdio>
#include <exception>
#include <memory>
#include <string>

#include "worker/sdk/app.hpp"
#include "worker/sdk/worker.hpp"

extern "C" gwx::handler* gwx_create_app();

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s REGISTERS SECRET NAME\n", argv[0]);
    return 2;
  }
  // Blocked before any thread starts, so only sigwait below sees them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  try {
    gwx::worker_options options;
    options.cluster.registers = gwx::parse_host_port_list(argv[1]);
    options.cluster.secret = argv[2];
    options.cluster.name = argv[3];
    options.on_link_change = [](const std::string& gateway, bool up) {
      std::printf("%s %s\n", up ? "linked" : "unlinked", gateway.c_str());
      std::fflush(stdout);
    };
    gwx::worker worker(std::move(options), std::unique_ptr<gwx::handler>(gwx_create_app()));
    worker.start();
    int sig = 0;
    sigwait(&stop_signals, &sig);
    return worker.drain().complete ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "own_worker: %s\n", e.what());
    return 1;
  }
}
