// gRPC's last shutdown may run on a thread of its own; main() waits for it before OpenSSL's exit
// handler runs. Each test runs in a process of its own (ctest), where gRPC starts uninitialized.
#include "common/registry/grpc_exit.hpp"

#include <grpc/grpc.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>

namespace gwx::registry {
namespace {

using namespace std::chrono_literals;

std::shared_ptr<grpc::Channel> some_channel() {
  return grpc::CreateChannel("127.0.0.1:1", grpc::InsecureChannelCredentials());
}

// Lets go of `channel` on another thread after `delay`, setting `released` just before.
std::thread release_later(std::shared_ptr<grpc::Channel> channel, std::chrono::milliseconds delay,
                          std::atomic<bool>& released) {
  return std::thread([channel = std::move(channel), delay, &released]() mutable {
    std::this_thread::sleep_for(delay);
    released = true;
    channel.reset();
  });
}

TEST(GrpcExit, WaitsUntilTheLastGrpcObjectOnAnotherThreadIsGone) {
  ASSERT_EQ(grpc_is_initialized(), 0);
  std::atomic<bool> released{false};
  auto channel = some_channel();
  ASSERT_NE(grpc_is_initialized(), 0);
  auto releaser = release_later(std::move(channel), 300ms, released);
  EXPECT_TRUE(wait_for_grpc_shutdown(10s));
  EXPECT_TRUE(released);
  EXPECT_EQ(grpc_is_initialized(), 0);
  releaser.join();
}

TEST(GrpcExit, GivesUpAfterItsBound) {
  auto channel = some_channel();
  const auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(wait_for_grpc_shutdown(150ms));
  EXPECT_GE(std::chrono::steady_clock::now() - start, 150ms);
  EXPECT_NE(grpc_is_initialized(), 0);
}

TEST(GrpcExit, TheGuardWaitsWhenItGoesLast) {
  std::atomic<bool> released{false};
  std::thread releaser;
  {
    grpc_exit_wait guard(10s);
    releaser = release_later(some_channel(), 300ms, released);
  }
  EXPECT_TRUE(released);
  EXPECT_EQ(grpc_is_initialized(), 0);
  releaser.join();
}

}  // namespace
}  // namespace gwx::registry
