#include "common/registry/gateway_watcher.hpp"

#include <grpcpp/client_context.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>
#include <utility>

#include "common/registry/backoff.hpp"
#include "common/registry/register_rpc.hpp"
#include "gwx/registry/v1/registry.grpc.pb.h"

namespace gwx::registry {
namespace {

using steady = std::chrono::steady_clock;

constexpr std::chrono::milliseconds k_initial_backoff{100};
constexpr std::chrono::milliseconds k_max_backoff{2000};

// What a register said before its stream broke ("stale" entries) is kept while no register is
// live, so the cluster runs on without any register. Once some register is live it speaks for
// the cluster: a stale entry it does not list is dropped this long after it went stale or after
// a register became live, whichever is later. The delay covers a restarted register that knows
// nothing yet until the gateways' next heartbeat (a third of their lease, 2 s by default), so a
// lone register restarting does not make every worker drop every gateway link.
constexpr std::chrono::milliseconds k_stale_grace{5000};

enum class link_state { unknown, up, down };

}  // namespace

struct gateway_watcher::impl {
  struct stale_entry {
    gateway_entry entry;
    steady::time_point since;
  };

  // What one register told us.
  struct source {
    host_port address;
    std::unique_ptr<v1::RegisterService::Stub> stub;
    // What the live stream says; empty while the stream is down.
    std::map<std::string, gateway_entry> gateways;
    // What it said before its stream broke and has not confirmed since.
    std::map<std::string, stale_entry> stale;
    bool had_snapshot = false;
    bool streaming = false;
    link_state state = link_state::unknown;
    std::shared_ptr<grpc::ClientContext> active;
    std::thread thread;
  };

  std::string token;
  /// The registers are called over TLS (for hints in failure logs).
  bool tls = false;
  register_credentials credentials;
  std::string watcher_name;
  change_handler on_change;

  // Serialises "apply a change, compare, call on_change" so callbacks see changes in order.
  std::mutex deliver_mutex;
  // Guards everything below; never held while calling out (gRPC or on_change).
  mutable std::mutex mutex;
  std::condition_variable wake;
  std::vector<std::unique_ptr<source>> sources;
  std::vector<gateway_entry> merged;
  // When the number of live registers last went from zero to one or more.
  steady::time_point live_since{};
  bool started = false;
  bool stopping = false;
  std::thread grace_thread;

  bool any_live_locked() const {
    return std::any_of(sources.begin(), sources.end(), [](const auto& s) { return s->streaming; });
  }

  // When a stale entry is dropped, provided some register is live.
  steady::time_point stale_deadline_locked(const stale_entry& stale) const {
    return std::max(stale.since, live_since) + k_stale_grace;
  }

  std::vector<gateway_entry> merge_locked() const {
    std::map<std::string, gateway_entry> all;
    // Live views first, so they win over stale ones for the same gateway.
    for (const auto& s : sources) {
      all.insert(s->gateways.begin(), s->gateways.end());
    }
    for (const auto& s : sources) {
      for (const auto& [id, stale] : s->stale) {
        all.emplace(id, stale.entry);
      }
    }
    std::vector<gateway_entry> out;
    out.reserve(all.size());
    for (auto& [id, entry] : all) {
      out.push_back(std::move(entry));
    }
    return out;
  }

  // Runs `mutate` on the state, then reports the merged set if it changed.
  template <typename F>
  void apply(F&& mutate) {
    std::lock_guard deliver(deliver_mutex);
    std::vector<gateway_entry> changed;
    bool report = false;
    {
      std::lock_guard lock(mutex);
      const bool was_live = any_live_locked();
      mutate();
      if (!was_live && any_live_locked()) {
        live_since = steady::now();
      }
      auto now_merged = merge_locked();
      if (now_merged != merged) {
        merged = std::move(now_merged);
        changed = merged;
        report = true;
      }
      wake.notify_all();
    }
    if (report && on_change) {
      try {
        on_change(changed);
      } catch (const std::exception& e) {
        spdlog::error("gateway watcher: change handler threw: {}", e.what());
      }
    }
  }

  void on_snapshot(source& s, const v1::Snapshot& snapshot) {
    std::map<std::string, gateway_entry> fresh;
    for (const auto& info : snapshot.gateways()) {
      fresh.emplace(info.gateway_id(), from_proto(info));
    }
    const auto now = steady::now();
    apply([&] {
      // Only a snapshot in the middle of a stream leaves anything here; the ones it drops
      // get the same grace as after a reconnect.
      for (auto& [id, entry] : s.gateways) {
        if (fresh.count(id) == 0) {
          s.stale.insert_or_assign(id, stale_entry{std::move(entry), now});
        }
      }
      for (const auto& [id, entry] : fresh) {
        s.stale.erase(id);
      }
      s.gateways = std::move(fresh);
      s.had_snapshot = true;
      s.streaming = true;
    });
  }

  void on_added(source& s, const v1::GatewayInfo& info) {
    auto entry = from_proto(info);
    apply([&] {
      s.stale.erase(entry.gateway_id);
      s.gateways[entry.gateway_id] = std::move(entry);
    });
  }

  void on_removed(source& s, const v1::GatewayInfo& info) {
    apply([&] {
      s.gateways.erase(info.gateway_id());
      // Fresh news beats what any register said before its stream broke.
      for (auto& other : sources) {
        other->stale.erase(info.gateway_id());
      }
    });
  }

  void on_stream_lost(source& s) {
    const auto now = steady::now();
    apply([&] {
      for (auto& [id, entry] : s.gateways) {
        s.stale.insert_or_assign(id, stale_entry{std::move(entry), now});
      }
      s.gateways.clear();
      s.streaming = false;
    });
  }

  void mark_up(source& s) {
    std::size_t count = 0;
    {
      std::lock_guard lock(mutex);
      if (s.state == link_state::up) {
        return;
      }
      s.state = link_state::up;
      count = s.gateways.size();
    }
    spdlog::info("gateway watcher: register {} up, watching ({} gateways)", s.address.to_string(),
                 count);
  }

  void mark_down(source& s, const grpc::Status& status) {
    std::size_t kept = 0;
    {
      std::lock_guard lock(mutex);
      if (s.state == link_state::down) {
        return;
      }
      s.state = link_state::down;
      kept = s.stale.size();
    }
    spdlog::warn(
        "gateway watcher: register {} unreachable ({}); its last {} gateways stay until a live "
        "register disagrees",
        s.address.to_string(), describe_unreachable(status, tls), kept);
  }

  void run(source& s) {
    backoff delays(k_initial_backoff, k_max_backoff);
    v1::WatchRequest request;
    request.set_watcher_name(watcher_name);
    while (true) {
      auto context = std::make_shared<grpc::ClientContext>();
      add_auth_metadata(*context, token, "Watch");
      {
        std::lock_guard lock(mutex);
        if (stopping) {
          return;
        }
        // Once the register is known to be down, the stream waits for the channel to connect
        // rather than failing at once: a failed call returns to a thread that sleeps, and then
        // nothing drives gRPC's reconnection attempts (connect and TLS handshake) but its 5 s
        // backup poller, too slow for its own 5 s connect deadline. stop() cancels the wait.
        context->set_wait_for_ready(s.state == link_state::down);
        s.active = context;
      }
      auto reader = s.stub->Watch(context.get(), request);
      v1::WatchEvent event;
      bool got_snapshot = false;
      // A snapshot too big for one message comes in pieces: the first as `snapshot` with the
      // total, the rest as `added` events. They are applied together, as one snapshot.
      v1::Snapshot pending;
      std::size_t pending_left = 0;
      const auto apply_snapshot = [&](const v1::Snapshot& snapshot) {
        on_snapshot(s, snapshot);
        if (!got_snapshot) {
          got_snapshot = true;
          delays.reset();
          mark_up(s);
        }
      };
      while (reader->Read(&event)) {
        if (pending_left > 0) {
          if (event.has_added()) {
            *pending.add_gateways() = std::move(*event.mutable_added());
            if (--pending_left == 0) {
              apply_snapshot(pending);
            }
            continue;
          }
          // Not a piece (a register that moved on): what came is the snapshot.
          pending_left = 0;
          apply_snapshot(pending);
        }
        if (event.has_snapshot()) {
          auto& snapshot = *event.mutable_snapshot();
          const auto pieces_left =
              snapshot.total() > static_cast<std::uint32_t>(snapshot.gateways_size())
                  ? snapshot.total() - static_cast<std::uint32_t>(snapshot.gateways_size())
                  : 0U;
          if (pieces_left > 0) {
            pending_left = pieces_left;
            pending = std::move(snapshot);
            continue;
          }
          apply_snapshot(snapshot);
        } else if (!got_snapshot) {
          // The first event must be a snapshot; changes without a base would be guesses.
          continue;
        } else if (event.has_added()) {
          on_added(s, event.added());
        } else if (event.has_removed()) {
          on_removed(s, event.removed());
        }
      }
      {
        std::lock_guard lock(mutex);
        s.active.reset();
      }
      const auto status = reader->Finish();
      {
        std::lock_guard lock(mutex);
        if (stopping) {
          return;
        }
      }
      on_stream_lost(s);
      mark_down(s, status);
      const auto delay = delays.next();
      std::unique_lock lock(mutex);
      if (wake.wait_for(lock, delay, [&] { return stopping; })) {
        return;
      }
    }
  }

  // Drops stale entries whose grace ran out while some register is live.
  void run_grace() {
    while (true) {
      {
        std::unique_lock lock(mutex);
        if (stopping) {
          return;
        }
        auto next = steady::time_point::max();
        if (any_live_locked()) {
          for (const auto& s : sources) {
            for (const auto& [id, stale] : s->stale) {
              next = std::min(next, stale_deadline_locked(stale));
            }
          }
        }
        if (next == steady::time_point::max()) {
          wake.wait(lock);
          continue;
        }
        if (next > steady::now()) {
          wake.wait_until(lock, next);
          continue;
        }
      }
      apply([&] {
        if (!any_live_locked()) {
          return;
        }
        const auto now = steady::now();
        for (auto& s : sources) {
          std::erase_if(s->stale, [&](const auto& item) {
            return stale_deadline_locked(item.second) <= now;
          });
        }
      });
    }
  }
};

gateway_watcher::gateway_watcher(std::vector<host_port> registers, std::string token,
                                 std::string watcher_name, change_handler on_change,
                                 const tls_files& tls)
    : impl_(std::make_unique<impl>()) {
  impl_->credentials = make_register_credentials(tls);
  const auto& credentials = impl_->credentials.channel;
  impl_->tls = tls.any();
  impl_->token = std::move(token);
  impl_->watcher_name = watcher_name.substr(0, k_max_watcher_name);
  impl_->on_change = std::move(on_change);
  for (auto& address : registers) {
    auto s = std::make_unique<impl::source>();
    s->stub = v1::RegisterService::NewStub(make_register_channel(address, credentials));
    s->address = std::move(address);
    impl_->sources.push_back(std::move(s));
  }
}

std::optional<std::string> gateway_watcher::reload_tls() {
  return impl_->credentials.reload();
}

gateway_watcher::~gateway_watcher() {
  stop();
}

void gateway_watcher::start() {
  std::lock_guard lock(impl_->mutex);
  if (impl_->started || impl_->stopping) {
    return;
  }
  impl_->started = true;
  for (auto& s : impl_->sources) {
    s->thread = std::thread([this, raw = s.get()] { impl_->run(*raw); });
  }
  impl_->grace_thread = std::thread([this] { impl_->run_grace(); });
}

void gateway_watcher::stop() {
  {
    std::lock_guard lock(impl_->mutex);
    if (impl_->stopping) {
      return;
    }
    impl_->stopping = true;
    for (auto& s : impl_->sources) {
      if (s->active) {
        s->active->TryCancel();
      }
    }
    impl_->wake.notify_all();
  }
  for (auto& s : impl_->sources) {
    if (s->thread.joinable()) {
      s->thread.join();
    }
  }
  if (impl_->grace_thread.joinable()) {
    impl_->grace_thread.join();
  }
}

bool gateway_watcher::wait_for_snapshot(std::chrono::milliseconds timeout) {
  std::unique_lock lock(impl_->mutex);
  return impl_->wake.wait_for(lock, timeout, [&] {
    return std::any_of(impl_->sources.begin(), impl_->sources.end(),
                       [](const auto& s) { return s->had_snapshot; });
  });
}

std::vector<gateway_entry> gateway_watcher::current() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->merged;
}

}  // namespace gwx::registry
