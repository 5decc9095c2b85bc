#include "gateway/close_cause.hpp"

#include <gtest/gtest.h>

#include <set>
#include <string>

#include "common/metrics/registry.hpp"
#include "gateway/gateway_metrics.hpp"

namespace gwx {
namespace {

using gateway::close_cause;

TEST(CloseCause, EveryCauseHasItsOwnLabel) {
  std::set<std::string> labels;
  for (std::size_t i = 0; i < gateway::k_close_causes; ++i) {
    labels.insert(gateway::label(static_cast<close_cause>(i)));
  }
  EXPECT_EQ(labels.size(), gateway::k_close_causes);
  // The labels dashboards already use keep their names.
  for (const char* kept : {"client", "server", "protocol_error", "timeout", "idle_timeout",
                           "heartbeat_timeout", "slow_client", "queue_policy", "shutdown"}) {
    EXPECT_EQ(labels.count(kept), 1U) << kept;
  }
}

TEST(CloseCause, MetricsCountTheCauseNotTheReasonText) {
  metrics::registry reg;
  gateway::listener_metrics m;
  m.attach(reg, "ws://127.0.0.1:0/");
  // The cause decides, whatever words the human-readable reason would have held.
  m.count_close(close_cause::refused);
  m.count_close(close_cause::refused);
  m.count_close(close_cause::idle_timeout);
  m.count_close(close_cause::io_error);
  const auto text = reg.expose();
  const auto sample = [&text](const std::string& reason) {
    const std::string head =
        "gwx_gateway_connections_closed_total{listener=\"ws://127.0.0.1:0/\","
        "reason=\"" +
        reason + "\"} ";
    const auto at = text.find(head);
    return at == std::string::npos
               ? std::string("missing")
               : text.substr(at + head.size(), text.find('\n', at) - at - head.size());
  };
  EXPECT_EQ(sample("refused"), "2");
  EXPECT_EQ(sample("idle_timeout"), "1");
  EXPECT_EQ(sample("io_error"), "1");
  EXPECT_EQ(sample("protocol_error"), "0");
  EXPECT_EQ(sample("timeout"), "0");
}

}  // namespace
}  // namespace gwx
