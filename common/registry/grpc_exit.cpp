#include "common/registry/grpc_exit.hpp"

#include <grpc/grpc.h>

#include <thread>

namespace gwx::registry {

bool wait_for_grpc_shutdown(std::chrono::milliseconds bound) {
  const auto deadline = std::chrono::steady_clock::now() + bound;
  while (grpc_is_initialized() != 0) {
    if (std::chrono::steady_clock::now() >= deadline) {
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

grpc_exit_wait::~grpc_exit_wait() {
  wait_for_grpc_shutdown(bound_);
}

}  // namespace gwx::registry
