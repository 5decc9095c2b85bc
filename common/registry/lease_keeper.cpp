#include "common/registry/lease_keeper.hpp"

#include <grpcpp/client_context.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <condition_variable>
#include <limits>
#include <mutex>
#include <thread>

#include "common/link_auth.hpp"
#include "common/registry/backoff.hpp"
#include "common/registry/register_rpc.hpp"
#include "gwx/registry/v1/registry.grpc.pb.h"

namespace gwx::registry {
namespace {

using steady = std::chrono::steady_clock;

constexpr std::chrono::milliseconds k_initial_backoff{100};
constexpr std::chrono::milliseconds k_max_backoff{2000};
constexpr std::chrono::milliseconds k_withdraw_deadline{500};

enum class link_state { unknown, up, down };

std::int64_t unix_ms_now() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

struct lease_keeper::impl {
  // One register and the thread that keeps our lease there.
  struct target {
    host_port address;
    std::unique_ptr<v1::RegisterService::Stub> stub;
    link_state state = link_state::unknown;
    std::shared_ptr<grpc::ClientContext> active;
    std::thread thread;
  };

  std::string token;
  /// The registers are called over TLS (for hints in failure logs).
  bool tls = false;
  register_credentials credentials;
  v1::HeartbeatRequest request;
  std::chrono::milliseconds ttl{};

  std::mutex mutex;
  std::condition_variable wake;
  std::vector<std::unique_ptr<target>> targets;
  bool started = false;
  bool stopping = false;

  // Waits `delay` unless stop() comes first; returns true when stopping.
  bool pause(std::chrono::milliseconds delay) {
    std::unique_lock lock(mutex);
    return wake.wait_for(lock, delay, [&] { return stopping; });
  }

  void run(target& t) {
    const auto& id = request.gateway().gateway_id();
    backoff delays(k_initial_backoff, std::clamp(ttl / 3, k_initial_backoff, k_max_backoff));
    auto interval = std::max(ttl / 3, std::chrono::milliseconds(1));
    while (true) {
      auto context = std::make_shared<grpc::ClientContext>();
      add_auth_metadata(*context, token, "Heartbeat");
      context->set_deadline(std::chrono::system_clock::now() + interval);
      // Once the register is known to be down, the call waits (until its deadline) for the
      // channel to connect rather than failing at once: a failing call returns to a thread
      // that sleeps, and then nothing drives gRPC's reconnection attempts (connect and TLS
      // handshake) but its 5 s backup poller, too slow for its own 5 s connect deadline.
      context->set_wait_for_ready(t.state == link_state::down);
      {
        std::lock_guard lock(mutex);
        if (stopping) {
          break;
        }
        t.active = context;
      }
      v1::HeartbeatResponse response;
      const auto status = t.stub->Heartbeat(context.get(), request, &response);
      {
        std::lock_guard lock(mutex);
        t.active.reset();
        if (stopping) {
          break;
        }
      }
      if (status.ok()) {
        // Renew at a third of what was granted, which may differ from what we asked for.
        const auto granted =
            response.ttl_ms() > 0 ? std::chrono::milliseconds(response.ttl_ms()) : ttl;
        interval = std::max(granted / 3, std::chrono::milliseconds(1));
        if (t.state != link_state::up) {
          spdlog::info("lease keeper: gateway {} registered with {} (lease {} ms)", id,
                       t.address.to_string(), response.ttl_ms());
        } else if (response.created()) {
          spdlog::info(
              "lease keeper: register {} had lost gateway {} (restarted?), registered again",
              t.address.to_string(), id);
        }
        t.state = link_state::up;
        delays.reset();
        if (pause(interval)) {
          break;
        }
        continue;
      }
      if (t.state != link_state::down) {
        spdlog::warn("lease keeper: register {} unreachable ({}), retrying", t.address.to_string(),
                     describe_unreachable(status, tls));
        t.state = link_state::down;
      }
      if (pause(delays.next())) {
        break;
      }
    }
    withdraw(t);
  }

  void withdraw(target& t) {
    grpc::ClientContext context;
    add_auth_metadata(context, token, "Withdraw");
    context.set_deadline(std::chrono::system_clock::now() + k_withdraw_deadline);
    v1::WithdrawRequest req;
    req.set_gateway_id(request.gateway().gateway_id());
    req.set_lease_key(request.lease_key());
    v1::WithdrawResponse response;
    const auto status = t.stub->Withdraw(&context, req, &response);
    if (status.ok()) {
      spdlog::info("lease keeper: gateway {} withdrawn from {}", req.gateway_id(),
                   t.address.to_string());
    } else {
      spdlog::debug("lease keeper: withdraw from {} failed ({}); the lease will lapse",
                    t.address.to_string(), describe(status));
    }
  }
};

lease_keeper::lease_keeper(std::vector<host_port> registers, std::string token, gateway_entry self,
                           std::chrono::milliseconds ttl, const tls_files& tls)
    : impl_(std::make_unique<impl>()) {
  impl_->credentials = make_register_credentials(tls);
  const auto& credentials = impl_->credentials.channel;
  impl_->tls = tls.any();
  impl_->token = std::move(token);
  impl_->ttl = std::max(ttl, std::chrono::milliseconds(3));
  *impl_->request.mutable_gateway() = to_proto(self);
  impl_->request.set_lease_key(link_auth::make_nonce() + link_auth::make_nonce());
  impl_->request.mutable_gateway()->set_started_unix_ms(unix_ms_now());
  impl_->request.set_ttl_ms(static_cast<std::uint32_t>(
      std::min<std::int64_t>(impl_->ttl.count(), std::numeric_limits<std::uint32_t>::max())));
  for (auto& address : registers) {
    auto t = std::make_unique<impl::target>();
    t->stub = v1::RegisterService::NewStub(make_register_channel(address, credentials));
    t->address = std::move(address);
    impl_->targets.push_back(std::move(t));
  }
}

std::optional<std::string> lease_keeper::reload_tls() {
  return impl_->credentials.reload();
}

lease_keeper::~lease_keeper() {
  stop();
}

void lease_keeper::start() {
  std::lock_guard lock(impl_->mutex);
  if (impl_->started || impl_->stopping) {
    return;
  }
  impl_->started = true;
  if (impl_->token.empty() && !impl_->targets.empty()) {
    spdlog::warn(
        "lease keeper: no register token set: the registers are open, anyone who reaches them can "
        "announce a fake gateway to every worker (set the same token on registers, gateways and "
        "workers)");
  }
  for (auto& t : impl_->targets) {
    t->thread = std::thread([this, raw = t.get()] { impl_->run(*raw); });
  }
}

void lease_keeper::stop() {
  {
    std::lock_guard lock(impl_->mutex);
    if (impl_->stopping) {
      return;
    }
    impl_->stopping = true;
    // A heartbeat stuck on a slow register must not hold up the withdraws.
    for (auto& t : impl_->targets) {
      if (t->active) {
        t->active->TryCancel();
      }
    }
    impl_->wake.notify_all();
  }
  // Each thread withdraws from its own register, so a dead one costs one deadline, not N.
  for (auto& t : impl_->targets) {
    if (t->thread.joinable()) {
      t->thread.join();
    }
  }
}

}  // namespace gwx::registry
