// The register's Watch stream outside gRPC: what OnDone() promises its owner.

#include "register/watch_stream.hpp"

#include <gtest/gtest.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace gwx::registry {
namespace {

/// Records, for every log line, whether the stream already said done() when it was logged.
class done_probe_sink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  explicit done_probe_sink(const watch_stream& stream) : stream_(stream) {}

  std::vector<std::pair<std::string, bool>> lines;

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    lines.emplace_back(std::string(msg.payload.data(), msg.payload.size()), stream_.done());
  }
  void flush_() override {}

 private:
  const watch_stream& stream_;
};

TEST(WatchStream, IsDoneOnlyOnceOnDoneNoLongerTouchesIt) {
  // The register drops a stream as soon as done() is true (its sweep thread prunes the list),
  // while gRPC's thread may still be inside OnDone(): everything OnDone() does, the
  // "disconnected" line included, must come before done() turns true.
  auto stream = std::make_shared<watch_stream>("w1 (test)", "127.0.0.1", nullptr, 16, 1 << 20);
  auto probe = std::make_shared<done_probe_sink>(*stream);
  auto previous = spdlog::default_logger();
  spdlog::set_default_logger(std::make_shared<spdlog::logger>("probe", probe));
  EXPECT_FALSE(stream->done());
  stream->OnDone();
  spdlog::set_default_logger(previous);
  ASSERT_EQ(probe->lines.size(), 1U);
  EXPECT_EQ(probe->lines[0].first, "watcher w1 (test) disconnected");
  EXPECT_FALSE(probe->lines[0].second) << "done() was already true while OnDone() logged";
  EXPECT_TRUE(stream->done());
}

TEST(WatchStream, ChangesPushedAfterOnDoneAreSettledAtOnce) {
  watch_stream stream("w2 (test)", "127.0.0.1", nullptr, 16, 1 << 20);
  stream.OnDone();
  int settled = 0;
  auto change = std::make_shared<watch_change>();
  change->pending = 1;
  change->on_settled = [&settled] { ++settled; };
  EXPECT_TRUE(stream.push(change));
  EXPECT_EQ(settled, 1);
  EXPECT_EQ(stream.backlog_bytes(), 0U);
}

}  // namespace
}  // namespace gwx::registry
