#include "common/metrics/registry.hpp"

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

namespace gwx::metrics {
namespace {

TEST(MetricsRegistry, ExpositionGolden) {
  registry reg;
  auto& requests =
      reg.add_counter("gwx_test_requests_total", "Requests handled.", {"method", "code"});
  requests.with({"post", "500"}).inc();
  requests.with({"get", "200"}).inc(3);
  reg.add_gauge("gwx_test_temperature", "A gauge.").with().set(-5);
  auto latency = reg.add_histogram("gwx_test_latency_seconds", "Latency.", {0.25, 0.5, 1}, {"path"})
                     .with({"/a"});
  latency.observe(0.25);
  latency.observe(0.5);
  latency.observe(0.75);
  latency.observe(3);
  auto reg_cb =
      reg.add_callback_gauge("gwx_test_queue_depth", "Queued.", {"queue"}).add({"q1"}, [] {
        return 7.0;
      });

  // prometheus-cpp's TextSerializer; gwx sorts families by name and children by labels, and
  // prometheus-cpp orders the labels of a sample by name.
  EXPECT_EQ(reg.expose(),
            "# HELP gwx_test_latency_seconds Latency.\n"
            "# TYPE gwx_test_latency_seconds histogram\n"
            "gwx_test_latency_seconds_count{path=\"/a\"} 4\n"
            "gwx_test_latency_seconds_sum{path=\"/a\"} 4.5\n"
            "gwx_test_latency_seconds_bucket{path=\"/a\",le=\"0.25\"} 1\n"
            "gwx_test_latency_seconds_bucket{path=\"/a\",le=\"0.5\"} 2\n"
            "gwx_test_latency_seconds_bucket{path=\"/a\",le=\"1\"} 3\n"
            "gwx_test_latency_seconds_bucket{path=\"/a\",le=\"+Inf\"} 4\n"
            "# HELP gwx_test_queue_depth Queued.\n"
            "# TYPE gwx_test_queue_depth gauge\n"
            "gwx_test_queue_depth{queue=\"q1\"} 7\n"
            "# HELP gwx_test_requests_total Requests handled.\n"
            "# TYPE gwx_test_requests_total counter\n"
            "gwx_test_requests_total{code=\"200\",method=\"get\"} 3\n"
            "gwx_test_requests_total{code=\"500\",method=\"post\"} 1\n"
            "# HELP gwx_test_temperature A gauge.\n"
            "# TYPE gwx_test_temperature gauge\n"
            "gwx_test_temperature -5\n");
}

TEST(MetricsRegistry, FamiliesWithoutSamplesAreLeftOut) {
  registry reg;
  EXPECT_EQ(reg.expose(), "");
  auto& events = reg.add_counter("gwx_test_events_total", "Events.", {"kind"});
  EXPECT_EQ(reg.expose(), "");
  events.with({"a"});
  EXPECT_EQ(reg.expose(),
            "# HELP gwx_test_events_total Events.\n# TYPE gwx_test_events_total counter\n"
            "gwx_test_events_total{kind=\"a\"} 0\n");
}

TEST(MetricsRegistry, EscapesLabelValues) {
  registry reg;
  reg.add_counter("gwx_test_x_total", "Paths \"quoted\".", {"path"})
      .with({"C:\\dir \"q\"\nz"})
      .inc();
  EXPECT_EQ(reg.expose(),
            "# HELP gwx_test_x_total Paths \"quoted\".\n"
            "# TYPE gwx_test_x_total counter\n"
            "gwx_test_x_total{path=\"C:\\\\dir \\\"q\\\"\\nz\"} 1\n");
}

TEST(MetricsRegistry, LargeCountsAreExact) {
  registry reg;
  auto bytes = reg.add_counter("gwx_test_bytes_total", "Bytes.").with();
  bytes.inc(std::uint64_t{1} << 40);
  bytes.inc(3);
  EXPECT_EQ(bytes.value(), (std::uint64_t{1} << 40) + 3);
  EXPECT_NE(reg.expose().find("\ngwx_test_bytes_total 1099511627779\n"), std::string::npos)
      << reg.expose();
}

TEST(MetricsRegistry, GaugeUpAndDown) {
  registry reg;
  auto g = reg.add_gauge("gwx_test_open", "Open.").with();
  g.inc();
  g.inc(4);
  g.dec(2);
  EXPECT_EQ(g.value(), 3);
  g.set(-1);
  EXPECT_EQ(g.value(), -1);
}

TEST(MetricsRegistry, SameLabelsGiveTheSameChild) {
  registry reg;
  auto& family = reg.add_counter("gwx_test_msgs_total", "Messages.", {"dir"});
  auto a = family.with({"in"});
  auto b = family.with(std::vector<std::string>{"in"});
  a.inc(2);
  b.inc(3);
  EXPECT_EQ(a.value(), 5U);
  EXPECT_EQ(family.with({"out"}).value(), 0U);
}

TEST(MetricsRegistry, DetachedHandlesDoNothing) {
  counter c;
  gauge g;
  histogram h;
  c.inc();
  g.set(4);
  h.observe(1.0);
  EXPECT_FALSE(c.attached());
  EXPECT_EQ(c.value(), 0U);
  EXPECT_EQ(g.value(), 0);
  EXPECT_EQ(h.snapshot().count, 0U);
}

TEST(MetricsRegistry, ReRegistrationReturnsTheSameFamily) {
  registry reg;
  auto& a = reg.add_counter("gwx_test_a_total", "A.", {"x"});
  auto& b = reg.add_counter("gwx_test_a_total", "A.", {"x"});
  EXPECT_EQ(&a, &b);
  auto& h1 = reg.add_histogram("gwx_test_h_seconds", "H.", {1, 2});
  auto& h2 = reg.add_histogram("gwx_test_h_seconds", "H.", {1, 2});
  EXPECT_EQ(&h1, &h2);
}

TEST(MetricsRegistry, ConflictingRegistrationThrows) {
  registry reg;
  reg.add_counter("gwx_test_a_total", "A.", {"x"});
  EXPECT_THROW(reg.add_counter("gwx_test_a_total", "other help", {"x"}), std::invalid_argument);
  EXPECT_THROW(reg.add_counter("gwx_test_a_total", "A.", {"y"}), std::invalid_argument);
  EXPECT_THROW(reg.add_callback_counter("gwx_test_a_total", "A.", {"x"}), std::invalid_argument);
  reg.add_gauge("gwx_test_g", "G.");
  EXPECT_THROW(reg.add_callback_gauge("gwx_test_g", "G."), std::invalid_argument);
  EXPECT_THROW(reg.add_histogram("gwx_test_g", "G.", {1}), std::invalid_argument);
  reg.add_histogram("gwx_test_h_seconds", "H.", {1, 2});
  EXPECT_THROW(reg.add_histogram("gwx_test_h_seconds", "H.", {1, 3}), std::invalid_argument);
}

TEST(MetricsRegistry, NamesAndLabelsAreValidated) {
  registry reg;
  EXPECT_THROW(reg.add_counter("gwx_test_requests", "no _total"), std::invalid_argument);
  EXPECT_THROW(reg.add_gauge("gwx_test_open_total", "gauge with _total"), std::invalid_argument);
  EXPECT_THROW(reg.add_gauge("gwx_test_x_count", "reserved suffix"), std::invalid_argument);
  EXPECT_THROW(reg.add_gauge("gwx_test_x_sum", "reserved suffix"), std::invalid_argument);
  EXPECT_THROW(reg.add_gauge("gwx_test_x_bucket", "reserved suffix"), std::invalid_argument);
  EXPECT_THROW(reg.add_gauge("gwxTestCamel", "capitals"), std::invalid_argument);
  EXPECT_THROW(reg.add_gauge("gwx:test", "colon"), std::invalid_argument);
  EXPECT_THROW(reg.add_gauge("9lives", "digit first"), std::invalid_argument);
  EXPECT_THROW(reg.add_gauge("gwx_test_nohelp", ""), std::invalid_argument);
  EXPECT_THROW(reg.add_gauge("gwx_test_x", "two\nlines"), std::invalid_argument);
  EXPECT_THROW(reg.add_gauge("gwx_test_x", "back\\slash"), std::invalid_argument);
  EXPECT_THROW(reg.add_gauge("gwx_test_x", "G.", {"a", "a"}), std::invalid_argument);
  EXPECT_THROW(reg.add_gauge("gwx_test_x", "G.", {"__reserved"}), std::invalid_argument);
  EXPECT_THROW(reg.add_gauge("gwx_test_x", "G.", {"Listener"}), std::invalid_argument);
  EXPECT_THROW(reg.add_gauge("gwx_test_x", "G.", {"a-b"}), std::invalid_argument);
  EXPECT_THROW(reg.add_histogram("gwx_test_h", "H.", {1}, {"le"}), std::invalid_argument);
  EXPECT_THROW(reg.add_histogram("gwx_test_h", "H.", {2, 1}), std::invalid_argument);
  EXPECT_EQ(reg.expose(), "");  // nothing half-registered
  EXPECT_NO_THROW(reg.add_gauge("gwx_test_h", "G.").with());
}

TEST(MetricsRegistry, WrongLabelCountThrows) {
  registry reg;
  auto& family = reg.add_counter("gwx_test_c_total", "C.", {"a", "b"});
  EXPECT_THROW(family.with({"x"}), std::invalid_argument);
  EXPECT_THROW(family.with({"x", "y", "z"}), std::invalid_argument);
  EXPECT_THROW(family.with(), std::invalid_argument);
  EXPECT_NO_THROW(family.with({"x", "y"}));
}

TEST(MetricsRegistry, CallbackRegistrationLifetime) {
  registry reg;
  auto& family = reg.add_callback_gauge("gwx_test_depth", "Depth.", {"q"});
  double depth = 4;
  {
    auto registration = family.add({"a"}, [&] { return depth; });
    EXPECT_TRUE(registration.active());
    EXPECT_THROW((void)family.add({"a"}, [] { return 1.0; }), std::invalid_argument);
    EXPECT_NE(reg.expose().find("gwx_test_depth{q=\"a\"} 4\n"), std::string::npos);
    depth = 2.5;
    EXPECT_NE(reg.expose().find("gwx_test_depth{q=\"a\"} 2.5\n"), std::string::npos);
    auto moved = std::move(registration);
    EXPECT_FALSE(registration.active());  // NOLINT(bugprone-use-after-move): moved-from state
    EXPECT_NE(reg.expose().find("gwx_test_depth{q=\"a\"}"), std::string::npos);
  }
  EXPECT_EQ(reg.expose().find("gwx_test_depth{"), std::string::npos);
  auto again = family.add({"a"}, [] { return 1.0; });  // the label set is free again
  again.reset();
  EXPECT_FALSE(again.active());
  EXPECT_EQ(reg.expose().find("gwx_test_depth{"), std::string::npos);
}

TEST(MetricsRegistry, ThrowingCallbackLeavesOnlyItsSampleOut) {
  registry reg;
  auto& family = reg.add_callback_counter("gwx_test_reads_total", "Reads.", {"k"});
  auto bad = family.add({"bad"}, []() -> double { throw std::runtime_error("gone"); });
  auto good = family.add({"good"}, [] { return 9.0; });
  EXPECT_EQ(reg.expose(),
            "# HELP gwx_test_reads_total Reads.\n"
            "# TYPE gwx_test_reads_total counter\n"
            "gwx_test_reads_total{k=\"good\"} 9\n");
}

}  // namespace
}  // namespace gwx::metrics
