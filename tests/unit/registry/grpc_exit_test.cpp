// gRPC's last shutdown may run on a thread of its own; main() waits for it before OpenSSL's exit
// handler runs. gRPC's "initialized" state is the whole process's, and the unit tests may all run
// in one process (the sanitize stage) where earlier tests leave it set: each case runs in a new
// process of this binary (gtest's "threadsafe" death-test style re-executes it with only that
// test), where gRPC starts uninitialized.
#include "common/registry/grpc_exit.hpp"

#include <grpc/grpc.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
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

// False, after saying why on stderr (shown by gtest when the new process exits 1).
bool fail(const char* why) {
  std::fprintf(stderr, "%s\n", why);
  return false;
}

// Runs `body` in a new process; the test passes when it returns true there.
template <class Body>
void in_new_process(Body body) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(std::exit(grpc_is_initialized() == 0 && body() ? 0 : 1), ::testing::ExitedWithCode(0),
              "");
}

TEST(GrpcExit, WaitsUntilTheLastGrpcObjectOnAnotherThreadIsGone) {
  in_new_process([] {
    std::atomic<bool> released{false};
    auto channel = some_channel();
    if (grpc_is_initialized() == 0) {
      return fail("a channel did not initialize gRPC");
    }
    auto releaser = release_later(std::move(channel), 300ms, released);
    const bool finished = wait_for_grpc_shutdown(10s);
    const bool was_released = released;
    releaser.join();
    if (!finished || !was_released || grpc_is_initialized() != 0) {
      return fail("returned before the channel was released and gRPC shut down");
    }
    return true;
  });
}

TEST(GrpcExit, GivesUpAfterItsBound) {
  in_new_process([] {
    auto channel = some_channel();
    const auto start = std::chrono::steady_clock::now();
    if (wait_for_grpc_shutdown(150ms)) {
      return fail("said gRPC had shut down while a channel was alive");
    }
    if (std::chrono::steady_clock::now() - start < 150ms) {
      return fail("gave up before its bound");
    }
    return true;
  });
}

TEST(GrpcExit, TheGuardWaitsWhenItGoesLast) {
  in_new_process([] {
    std::atomic<bool> released{false};
    std::thread releaser;
    {
      grpc_exit_wait guard(10s);
      releaser = release_later(some_channel(), 300ms, released);
    }
    const bool was_released = released;
    releaser.join();
    if (!was_released || grpc_is_initialized() != 0) {
      return fail("the guard went before the channel was released and gRPC shut down");
    }
    return true;
  });
}

}  // namespace
}  // namespace gwx::registry
