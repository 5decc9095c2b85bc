#include "tools/bench/report.hpp"

#include <cstdio>

namespace gwx::bench {
namespace {

std::string ms(std::uint64_t ns) {
  return fixed(static_cast<double>(ns) / 1e6, 3);
}

std::string per_unit(const std::string& mode) {
  if (mode == "fanout") {
    return "delivery";
  }
  if (mode == "connect") {
    return "conn";
  }
  return "msg";
}

}  // namespace

std::string fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

std::string json_escape(const std::string& s) {
  std::string out;
  for (const char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += c;
    }
  }
  return out;
}

const char* rate_unit(const std::string& mode) {
  if (mode == "fanout") {
    return "deliveries/s";
  }
  if (mode == "connect") {
    return "conns/s";
  }
  return "msgs/s";
}

std::string format_line(const run_result& r) {
  std::string out = "mode=" + r.mode + " proto=" + r.protocol;
  if (!r.label.empty()) {
    out += " system=" + r.label;
  }
  out += " conns=" + std::to_string(r.connections);
  if (r.mode != "idle") {
    out += " size=" + std::to_string(r.size) + " inflight=" + std::to_string(r.inflight) +
           " threads=" + std::to_string(r.threads) + " seconds=" + fixed(r.seconds, 2) + " " +
           rate_unit(r.mode) + "=" + fixed(r.rate, 0) + " p50_ms=" + ms(r.p50_ns) +
           " p99_ms=" + ms(r.p99_ns) + " p999_ms=" + ms(r.p999_ns);
  }
  out += " errors=" + std::to_string(r.errors);
  const auto unit = per_unit(r.mode);
  for (const auto& p : r.pids) {
    if (r.mode == "idle") {
      out += " rss_per_conn[" + p.name +
             "]=" + (p.rss_per_conn ? fixed(*p.rss_per_conn, 0) : std::string("?"));
    } else {
      out += " cpu_us/" + unit + "[" + p.name +
             "]=" + (p.cpu_us_per_msg ? fixed(*p.cpu_us_per_msg, 3) : std::string("?"));
      out += " cpu%[" + p.name + "]=" + (p.cpu_percent ? fixed(*p.cpu_percent, 0) : "?");
    }
  }
  if (r.self_cpu_percent && r.mode != "idle") {
    out += " cpu%[bench]=" + fixed(*r.self_cpu_percent, 0);
  }
  if (!r.first_error.empty()) {
    out += " first_error=\"" + json_escape(r.first_error) + "\"";
  }
  return out;
}

std::string format_json(const run_result& r) {
  auto num = [](const std::optional<double>& v, int digits) {
    return v ? fixed(*v, digits) : std::string("null");
  };
  auto lng = [](const std::optional<long>& v) {
    return v ? std::to_string(*v) : std::string("null");
  };
  std::string out = "{\"mode\":\"" + r.mode + "\",\"protocol\":\"" + r.protocol + "\",\"url\":\"" +
                    json_escape(r.url) + "\"";
  if (!r.label.empty()) {
    out += ",\"system\":\"" + r.label + "\",\"phase\":\"" + r.phase +
           "\",\"round\":" + std::to_string(r.round);
  }
  out += ",\"connections\":" + std::to_string(r.connections) +
         ",\"size\":" + std::to_string(r.size) + ",\"inflight\":" + std::to_string(r.inflight) +
         ",\"threads\":" + std::to_string(r.threads) + ",\"seconds\":" + fixed(r.seconds, 3) +
         ",\"messages\":" + std::to_string(r.messages) + ",\"rate\":" + fixed(r.rate, 1) +
         ",\"rate_unit\":\"" + rate_unit(r.mode) + "\"" + ",\"p50_ms\":" + ms(r.p50_ns) +
         ",\"p99_ms\":" + ms(r.p99_ns) + ",\"p999_ms\":" + ms(r.p999_ns) +
         ",\"errors\":" + std::to_string(r.errors) + ",\"sent\":" + std::to_string(r.sent) +
         ",\"lost\":" + std::to_string(r.lost) + ",\"first_error\":\"" +
         json_escape(r.first_error) + "\"" +
         ",\"bench_cpu_us_per_msg\":" + num(r.self_cpu_us_per_msg, 3) +
         ",\"bench_cpu_percent\":" + num(r.self_cpu_percent, 1) + ",\"pids\":{";
  bool first = true;
  for (const auto& p : r.pids) {
    out += std::string(first ? "" : ",") + "\"" + json_escape(p.name) +
           "\":{\"pid\":" + std::to_string(p.pid) + ",\"cpu_us\":" + num(p.cpu_us, 0) +
           ",\"cpu_us_per_msg\":" + num(p.cpu_us_per_msg, 3) +
           ",\"cpu_percent\":" + num(p.cpu_percent, 1) + ",\"rss_before\":" + lng(p.rss_before) +
           ",\"rss_after\":" + lng(p.rss_after) + ",\"rss_per_conn\":" + num(p.rss_per_conn, 1) +
           "}";
    first = false;
  }
  out += "}}";
  return out;
}

}  // namespace gwx::bench
