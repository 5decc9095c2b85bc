// gwx-register-bench: measures one register under a big fleet, all simulated in this process:
// G gateways keeping leases and W watchers (one connection each) on gRPC's callback client API.
// Prints the register's threads, memory and CPU, its own CPU per change next to the register's,
// and how long a joining gateway takes to be known by every watcher (p50/p99/max over several
// joins); with --metrics, also the register's own share of that time. See docs/benchmarks.md.
#include <grpcpp/client_context.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/channel_arguments.h>
#include <grpcpp/support/client_callback.h>
#include <unistd.h>

#include <algorithm>
#include <asio.hpp>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/net/endpoint.hpp"
#include "common/options.hpp"
#include "gwx/registry/v1/registry.grpc.pb.h"

namespace {

namespace v1 = gwx::registry::v1;
using steady = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr const char* k_program = "gwx-register-bench";

// What /proc says about one process.
struct process_sample {
  double cpu_seconds = 0;
  long rss_kb = 0;
  long threads = 0;
};

process_sample sample(pid_t pid) {
  process_sample out;
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) {
      out.rss_kb = std::stol(line.substr(6));
    } else if (line.rfind("Threads:", 0) == 0) {
      out.threads = std::stol(line.substr(8));
    }
  }
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  std::istringstream fields(text.substr(text.rfind(')') + 2));
  std::string field;
  long ticks = 0;
  for (int i = 3; i <= 15 && fields >> field; ++i) {
    if (i == 14 || i == 15) {
      ticks += std::stol(field);
    }
  }
  out.cpu_seconds = static_cast<double>(ticks) / static_cast<double>(sysconf(_SC_CLK_TCK));
  return out;
}

std::shared_ptr<grpc::Channel> own_channel(const std::string& address) {
  grpc::ChannelArguments args;
  // One TCP connection per watcher, as with real workers on other hosts.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
}

// How many watchers have heard of the gateway being timed: each watcher counts itself once, and
// the main thread sleeps until all have (no polling of every watcher, which would take CPU
// from the streams it measures).
class join_tally {
 public:
  void expect(const std::string& id) {
    std::lock_guard lock(mutex_);
    id_ = id;
    seen_ = 0;
  }
  void saw(const std::string& id) {
    std::lock_guard lock(mutex_);
    if (id == id_) {
      ++seen_;
      changed_.notify_all();
    }
  }
  /// Waits until `n` watchers saw the expected id or `timeout` passed; returns how many did.
  std::size_t wait(std::size_t n, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    changed_.wait_for(lock, timeout, [&] { return seen_ >= n; });
    return seen_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::string id_;
  std::size_t seen_ = 0;
};

// One simulated watcher: a Watch stream read by gRPC's callback API (no thread of its own).
class watcher final : public grpc::ClientReadReactor<v1::WatchEvent> {
 public:
  watcher(v1::RegisterService::Stub& stub, int index, join_tally& tally) : tally_(tally) {
    request_.set_watcher_name("bench-" + std::to_string(index));
    stub.async()->Watch(&context_, &request_, this);
    StartRead(&event_);
    StartCall();
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      return;
    }
    const auto now = steady::now();
    {
      std::lock_guard lock(mutex_);
      if (event_.has_snapshot()) {
        snapshot_size_ = static_cast<std::size_t>(event_.snapshot().gateways_size());
        snapshot_at_ = now;
      } else if (event_.has_added()) {
        seen_[event_.added().gateway_id()] = now;
      } else if (event_.has_removed()) {
        ++removed_;
      }
    }
    if (event_.has_added()) {
      tally_.saw(event_.added().gateway_id());
    }
    StartRead(&event_);
  }

  void OnDone(const grpc::Status& status) override {
    std::lock_guard lock(mutex_);
    done_ = true;
    status_ = status;
    finished_.notify_all();
  }

  bool has_snapshot() const {
    std::lock_guard lock(mutex_);
    return snapshot_at_ != steady::time_point{};
  }

  /// When this watcher heard of `id`, or nothing yet.
  std::optional<steady::time_point> seen(const std::string& id) const {
    std::lock_guard lock(mutex_);
    const auto it = seen_.find(id);
    return it == seen_.end() ? std::nullopt : std::optional(it->second);
  }

  /// How many `removed` events this watcher got.
  std::size_t removed() const {
    std::lock_guard lock(mutex_);
    return removed_;
  }

  void stop() {
    context_.TryCancel();
    std::unique_lock lock(mutex_);
    finished_.wait_for(lock, 5s, [&] { return done_; });
  }

 private:
  join_tally& tally_;
  grpc::ClientContext context_;
  v1::WatchRequest request_;
  v1::WatchEvent event_;
  mutable std::mutex mutex_;
  std::condition_variable finished_;
  std::map<std::string, steady::time_point> seen_;
  std::size_t snapshot_size_ = 0;
  std::size_t removed_ = 0;
  steady::time_point snapshot_at_{};
  bool done_ = false;
  grpc::Status status_;
};

v1::GatewayInfo gateway_info(const std::string& id, int index) {
  v1::GatewayInfo info;
  info.set_gateway_id(id);
  info.set_internal_address("198.18.0." + std::to_string(index % 250 + 1) + ":7800");
  info.add_listeners("ws://198.18.0." + std::to_string(index % 250 + 1) + ":8080/ws");
  info.add_listeners("tcp+line://198.18.0." + std::to_string(index % 250 + 1) + ":9000");
  info.set_name("gw-host-" + std::to_string(index));
  return info;
}

v1::HeartbeatRequest heartbeat_request(const v1::GatewayInfo& info, const std::string& key) {
  v1::HeartbeatRequest request;
  *request.mutable_gateway() = info;
  request.set_ttl_ms(6000);
  request.set_lease_key(key);
  return request;
}

bool heartbeat(v1::RegisterService::Stub& stub, const v1::GatewayInfo& info,
               const std::string& key) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + 5s);
  v1::HeartbeatResponse response;
  return stub.Heartbeat(&context, heartbeat_request(info, key), &response).ok();
}

// One round of the fleet's renewals, all in flight at once (as G gateways would send them),
// so a round takes one round trip rather than G: sequential calls fall behind on a busy machine
// and the leases lapse, which adds changes to the very fan-out being measured. Returns the
// number of calls that failed.
long renew_all(v1::RegisterService::Stub& stub, const std::vector<v1::GatewayInfo>& fleet) {
  struct call {
    grpc::ClientContext context;
    v1::HeartbeatRequest request;
    v1::HeartbeatResponse response;
  };
  std::mutex mutex;
  std::condition_variable finished;
  std::size_t pending = fleet.size();
  long failures = 0;
  std::vector<std::unique_ptr<call>> calls;
  for (const auto& info : fleet) {
    auto& c = *calls.emplace_back(std::make_unique<call>());
    c.context.set_deadline(std::chrono::system_clock::now() + 5s);
    c.request = heartbeat_request(info, "bench-key-" + info.gateway_id());
    stub.async()->Heartbeat(&c.context, &c.request, &c.response, [&](const grpc::Status& status) {
      std::lock_guard lock(mutex);
      failures += status.ok() ? 0 : 1;
      if (--pending == 0) {
        finished.notify_all();
      }
    });
  }
  std::unique_lock lock(mutex);
  finished.wait(lock, [&] { return pending == 0; });  // every call ends by its deadline
  return failures;
}

// The register's own fan-out histogram (gwx_register_watch_fanout_seconds), read from its
// /metrics: cumulative bucket counts by upper bound, and the sum.
struct fanout_histogram {
  std::map<double, double> buckets;  // le -> cumulative count (+Inf as infinity)
  double sum = 0;
  bool ok = false;
};

fanout_histogram read_fanout(const std::string& metrics_address) {
  fanout_histogram out;
  if (metrics_address.empty()) {
    return out;
  }
  try {
    const auto target = gwx::parse_host_port(metrics_address);
    asio::io_context io;
    asio::ip::tcp::socket socket(io);
    asio::ip::tcp::resolver resolver(io);
    asio::connect(socket, resolver.resolve(target.host, std::to_string(target.port)));
    const std::string request =
        "GET /metrics HTTP/1.1\r\nHost: " + metrics_address + "\r\nConnection: close\r\n\r\n";
    asio::write(socket, asio::buffer(request));
    std::string body;
    std::error_code ec;
    char chunk[65536];
    while (true) {
      const auto n = socket.read_some(asio::buffer(chunk), ec);
      body.append(chunk, n);
      if (ec) {
        break;  // eof: the whole page is in
      }
    }
    std::istringstream lines(body);
    const std::string bucket = "gwx_register_watch_fanout_seconds_bucket{le=\"";
    const std::string sum = "gwx_register_watch_fanout_seconds_sum ";
    for (std::string line; std::getline(lines, line);) {
      if (line.rfind(bucket, 0) == 0) {
        const auto end = line.find('"', bucket.size());
        const auto le = line.substr(bucket.size(), end - bucket.size());
        out.buckets[le == "+Inf" ? std::numeric_limits<double>::infinity() : std::stod(le)] =
            std::stod(line.substr(line.rfind(' ') + 1));
      } else if (line.rfind(sum, 0) == 0) {
        out.sum = std::stod(line.substr(sum.size()));
      }
    }
    out.ok = !out.buckets.empty();
  } catch (const std::exception& e) {
    std::cerr << k_program << ": reading " << metrics_address << "/metrics: " << e.what() << "\n";
  }
  return out;
}

// The upper bound of the bucket holding quantile `q` of the observations between two reads.
double bucket_quantile(const fanout_histogram& before, const fanout_histogram& after, double q) {
  const double total = after.buckets.rbegin()->second - before.buckets.rbegin()->second;
  for (const auto& [le, count] : after.buckets) {
    const auto it = before.buckets.find(le);
    const double delta = count - (it == before.buckets.end() ? 0 : it->second);
    if (total > 0 && delta >= q * total) {
      return le;
    }
  }
  return std::numeric_limits<double>::infinity();
}

double percentile(std::vector<double> values, double p) {
  if (values.empty()) {
    return 0;
  }
  std::sort(values.begin(), values.end());
  const auto rank = static_cast<std::size_t>(p * static_cast<double>(values.size() - 1) + 0.5);
  return values[std::min(rank, values.size() - 1)];
}

}  // namespace

int main(int argc, char** argv) {
  gwx::option_parser parser(
      k_program,
      "gwx-register-bench --register HOST:PORT --pid PID [--gateways N] [--watchers N] "
      "[--joins N]",
      "Simulates a fleet against one running gwx-register (start it with --peer-rate 0 and\n"
      "--max-gateways-per-peer above --gateways, since every simulated caller shares one\n"
      "address) and prints its threads, memory and CPU, and the time for a joining gateway to\n"
      "be seen by every watcher.");
  // clang-format off
  parser.options().add_options()
      ("register", gwx::po::value<std::string>()->required()->value_name("HOST:PORT"),
       "the register to measure")
      ("pid", gwx::po::value<long>()->required()->value_name("PID"),
       "its process id, to read its threads, memory and CPU from /proc")
      ("gateways", gwx::po::value<int>()->default_value(200)->value_name("N"),
       "gateways keeping a lease (6 s, renewed every 2 s)")
      ("watchers", gwx::po::value<int>()->default_value(2000)->value_name("N"),
       "Watch streams, one connection each")
      ("joins", gwx::po::value<int>()->default_value(20)->value_name("N"),
       "gateways that join one after another once everything runs; each is timed")
      ("metrics", gwx::po::value<std::string>()->default_value("")->value_name("HOST:PORT"),
       "the register's --metrics address: also report its own fan-out time per change "
       "(gwx_register_watch_fanout_seconds), to tell the register's share from the watchers'");
  // clang-format on
  const auto vm = parser.parse(argc, argv);
  const auto address = vm["register"].as<std::string>();
  const auto pid = static_cast<pid_t>(vm["pid"].as<long>());
  const int gateways = vm["gateways"].as<int>();
  const int watchers = vm["watchers"].as<int>();
  const int joins = vm["joins"].as<int>();
  const auto metrics_address = vm["metrics"].as<std::string>();

  auto control = v1::RegisterService::NewStub(own_channel(address));
  const auto idle = sample(pid);

  // The fleet's leases, renewed every 2 s.
  std::vector<v1::GatewayInfo> fleet;
  for (int i = 0; i < gateways; ++i) {
    fleet.push_back(gateway_info("fleet-" + std::to_string(i), i));
  }
  std::atomic<bool> running{true};
  std::atomic<long> renew_failures{0};
  std::atomic<bool> fleet_up{false};
  std::thread renewer([&] {
    while (running) {
      const auto round = steady::now();
      renew_failures += renew_all(*control, fleet);
      fleet_up = true;
      while (running && steady::now() - round < 2s) {
        std::this_thread::sleep_for(50ms);
      }
    }
  });
  // The whole fleet registered before the watchers come.
  while (!fleet_up) {
    std::this_thread::sleep_for(20ms);
  }
  const auto with_fleet = sample(pid);

  // The watchers.
  const auto connect_begin = steady::now();
  std::vector<std::unique_ptr<v1::RegisterService::Stub>> stubs;
  std::vector<std::unique_ptr<watcher>> streams;
  join_tally tally;
  for (int i = 0; i < watchers; ++i) {
    stubs.push_back(v1::RegisterService::NewStub(own_channel(address)));
    streams.push_back(std::make_unique<watcher>(*stubs.back(), i, tally));
  }
  const auto all_snapshots = [&] {
    return std::all_of(streams.begin(), streams.end(),
                       [](const auto& w) { return w->has_snapshot(); });
  };
  while (!all_snapshots() && steady::now() - connect_begin < 120s) {
    std::this_thread::sleep_for(20ms);
  }
  const std::chrono::duration<double> connect_time = steady::now() - connect_begin;
  if (!all_snapshots()) {
    std::cerr << k_program << ": not every watcher got its snapshot within 120 s\n";
    running = false;
    renewer.join();
    return 1;
  }
  const auto with_watchers = sample(pid);
  // Idle with every watcher attached: what holding them costs.
  std::this_thread::sleep_for(5s);
  const auto idle_after = sample(pid);

  // Joins, one after another: the time until the last watcher heard of each.
  std::vector<double> all_latencies_ms;
  std::vector<double> last_watcher_ms;
  std::vector<double> call_ms;
  const auto removed_before = streams.front()->removed();
  const auto joins_cpu_before = sample(pid);
  const auto bench_cpu_before = sample(getpid());
  const auto fanout_before = read_fanout(metrics_address);
  for (int j = 0; j < joins; ++j) {
    const auto id = "join-" + std::to_string(j);
    const auto key = "bench-key-" + id;
    tally.expect(id);
    const auto begin = steady::now();
    if (!heartbeat(*control, gateway_info(id, 1000 + j), key)) {
      std::cerr << k_program << ": heartbeat of " << id << " failed\n";
      return 1;
    }
    // The register answers the call that made the change once it has handed the change to every
    // stream: this is how long other callers may wait behind a fan-out.
    call_ms.push_back(std::chrono::duration<double, std::milli>(steady::now() - begin).count());
    const auto reached = tally.wait(streams.size(), 30s);
    if (reached != streams.size()) {
      std::cerr << k_program << ": " << id << " reached " << reached << " of " << streams.size()
                << " watchers within 30 s\n";
      return 1;
    }
    std::vector<double> latencies;
    for (const auto& w : streams) {
      if (const auto at = w->seen(id)) {
        latencies.push_back(std::chrono::duration<double, std::milli>(*at - begin).count());
      }
    }
    last_watcher_ms.push_back(*std::max_element(latencies.begin(), latencies.end()));
    all_latencies_ms.insert(all_latencies_ms.end(), latencies.begin(), latencies.end());
    grpc::ClientContext context;
    v1::WithdrawRequest withdraw;
    withdraw.set_gateway_id(id);
    withdraw.set_lease_key(key);
    v1::WithdrawResponse response;
    control->Withdraw(&context, withdraw, &response);
    std::this_thread::sleep_for(200ms);
  }
  const auto joins_cpu_after = sample(pid);
  const auto bench_cpu_after = sample(getpid());
  const auto fanout_after = read_fanout(metrics_address);
  // Withdraws of the joined gateways are expected; anything more is a fleet lease that lapsed.
  const long lapsed = std::max(0L, static_cast<long>(streams.front()->removed() - removed_before) -
                                       static_cast<long>(joins));

  running = false;
  renewer.join();
  for (auto& w : streams) {
    w->stop();
  }

  std::printf("register %s (pid %d): %d gateways, %d watchers, %d joins\n", address.c_str(),
              static_cast<int>(pid), gateways, watchers, joins);
  std::printf("threads: idle %ld, with gateways %ld, with watchers %ld\n", idle.threads,
              with_fleet.threads, with_watchers.threads);
  std::printf("memory (RSS): idle %.1f MB, with gateways %.1f MB, with watchers %.1f MB\n",
              static_cast<double>(idle.rss_kb) / 1024,
              static_cast<double>(with_fleet.rss_kb) / 1024,
              static_cast<double>(idle_after.rss_kb) / 1024);
  std::printf("watchers connected and got their snapshot in %.2f s\n", connect_time.count());
  std::printf(
      "register CPU: %.2f s to connect the watchers, %.1f %% of a core while idle with "
      "them (gateways renewing), %.2f s for %d joins and withdraws\n",
      with_watchers.cpu_seconds - with_fleet.cpu_seconds,
      100.0 * (idle_after.cpu_seconds - with_watchers.cpu_seconds) / 5.0,
      joins_cpu_after.cpu_seconds - joins_cpu_before.cpu_seconds, joins);
  // Each join is followed by a withdraw: two changes per join reach every watcher.
  std::printf(
      "CPU per change: register %.1f ms, this bench (the simulated watchers) %.1f ms\n",
      1000.0 * (joins_cpu_after.cpu_seconds - joins_cpu_before.cpu_seconds) / (2.0 * joins),
      1000.0 * (bench_cpu_after.cpu_seconds - bench_cpu_before.cpu_seconds) / (2.0 * joins));
  std::printf("join seen by a watcher: p50 %.1f ms, p99 %.1f ms, max %.1f ms\n",
              percentile(all_latencies_ms, 0.5), percentile(all_latencies_ms, 0.99),
              percentile(all_latencies_ms, 1.0));
  std::printf("join seen by every watcher (per join): p50 %.1f ms, p99 %.1f ms, max %.1f ms\n",
              percentile(last_watcher_ms, 0.5), percentile(last_watcher_ms, 0.99),
              percentile(last_watcher_ms, 1.0));
  std::printf(
      "the joining Heartbeat call (answered after the change is queued on every stream): "
      "p50 %.1f ms, p99 %.1f ms\n",
      percentile(call_ms, 0.5), percentile(call_ms, 0.99));
  if (fanout_before.ok && fanout_after.ok) {
    const double changes =
        fanout_after.buckets.rbegin()->second - fanout_before.buckets.rbegin()->second;
    std::printf(
        "register's own fan-out (every stream has written the change), %.0f changes: mean %.1f "
        "ms, p50 <= %.0f ms, p99 <= %.0f ms (histogram bucket bounds)\n",
        changes, changes > 0 ? 1000.0 * (fanout_after.sum - fanout_before.sum) / changes : 0.0,
        1000.0 * bucket_quantile(fanout_before, fanout_after, 0.5),
        1000.0 * bucket_quantile(fanout_before, fanout_after, 0.99));
  }
  std::printf("lease renewals failed: %ld; fleet leases lapsed during the joins: %ld\n",
              renew_failures.load(), lapsed);
  return 0;
}
