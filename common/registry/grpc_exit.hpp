#pragma once

#include <chrono>

namespace gwx::registry {

/// Declared first in a main() that uses gRPC, so that it is destroyed last: its destructor
/// waits, at most `bound`, until gRPC has finished shutting down.
///
/// Why: when the last gRPC object goes on one of gRPC's own threads (a TLS handshake that ends
/// after its channel was destroyed, say), grpc_shutdown() hands the clean-up to a detached
/// thread, and gRPC's executor threads may still be in that handshake. Returning from main
/// then runs OpenSSL's exit handler, which frees OpenSSL's global state (random generators,
/// providers) under those threads: what they still hold is orphaned (LeakSanitizer reports
/// it) and a thread may touch freed memory. Once gRPC's clean-up has joined its threads,
/// nothing uses OpenSSL but the exiting thread.
class grpc_exit_wait {
 public:
  explicit grpc_exit_wait(std::chrono::milliseconds bound = std::chrono::seconds(2))
      : bound_(bound) {}
  ~grpc_exit_wait();
  grpc_exit_wait(const grpc_exit_wait&) = delete;
  grpc_exit_wait& operator=(const grpc_exit_wait&) = delete;

 private:
  std::chrono::milliseconds bound_;
};

/// Waits until gRPC is no longer initialized (its last shutdown, wherever it runs, has
/// finished) or `bound` has passed; true if it finished. gRPC holds its init lock for the whole
/// clean-up, so "not initialized" means the clean-up is done.
bool wait_for_grpc_shutdown(std::chrono::milliseconds bound);

}  // namespace gwx::registry
