#pragma once

// An in-memory cluster behind the transport interface: gateways holding clients with uids,
// groups and sessions, so the Gateway API and the apps can be tested without sockets or
// threads. Each fake gateway runs the gateway's own client_directory and command_executor;
// its clients are fake ports that record what they receive. Everything runs synchronously on
// the calling thread.

#include <algorithm>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "common/client_id.hpp"
#include "common/cluster/gateway_api.hpp"
#include "common/cluster/transport.hpp"
#include "common/cluster/types.hpp"
#include "common/codec/ws_frame.hpp"
#include "gateway/client_directory.hpp"
#include "gateway/command_executor.hpp"

namespace gwx::fakes {

class fake_cluster final : public cluster::transport {
 public:
  /// What a test sees of a client: what it received, and (refreshed by find()) its
  /// membership and session as its gateway holds them.
  struct client {
    std::string uid;
    std::set<std::string> groups;
    session_map session;
    std::uint64_t session_seq = 0;
    std::vector<message> inbox;
    bool closed = false;
  };
  struct gateway {
    gateway(std::string id_, std::string address_, std::uint64_t epoch)
        : id(std::move(id_)), address(std::move(address_)), directory(epoch, 0) {}

    std::string id;
    std::string address;
    bool linked = true;
    /// Linked but never answers requests (a hung gateway).
    bool silent = false;
    std::map<std::string, client> clients;
    gwx::gateway::listener_config listener;  ///< WebSocket framing, decoded by the fake ports
    gwx::gateway::client_directory directory;
    gwx::gateway::command_executor executor{directory};
  };

  /// Adds a gateway at "127.0.0.1:<port>" with `epoch`.
  gateway& add_gateway(std::uint16_t port, std::uint64_t epoch) {
    std::lock_guard lock(mutex_);
    gateways_.push_back(
        std::make_unique<gateway>(epoch_to_hex(epoch), "127.0.0.1:" + std::to_string(port), epoch));
    auto& g = *gateways_.back();
    epochs_[g.id] = epoch;
    return g;
  }

  /// Connects a client to `g`; returns its client_id.
  std::string connect(gateway& g) {
    std::lock_guard lock(mutex_);
    const auto port =
        static_cast<std::uint16_t>(std::stoi(g.address.substr(g.address.rfind(':') + 1)));
    // Loop 0 of its gateway: the connection number's low byte.
    const std::uint64_t connection = ++next_connection_ << 8;
    auto id = make_client_id("127.0.0.1", port, epochs_[g.id], connection);
    auto& c = g.clients[id];
    auto p = std::make_shared<recording_port>(g.directory, c);
    auto& record = g.directory.add(connection, id, g.listener, "127.0.0.1", 40000, p);
    p->attach(record);
    g.directory.announce(record);
    return id;
  }

  /// The client `id` (null when unknown or closed).
  client* find(const std::string& id) {
    std::lock_guard lock(mutex_);
    return find_locked(id);
  }

  /// Messages `id` received so far, as text.
  std::vector<std::string> inbox(const std::string& id) {
    std::lock_guard lock(mutex_);
    std::vector<std::string> out;
    for (auto& g : gateways_) {
      if (auto it = g->clients.find(id); it != g->clients.end()) {
        for (const auto& m : it->second.inbox) {
          out.push_back(m.data);
        }
      }
    }
    return out;
  }

  /// Forgets every client's received messages.
  void clear_inboxes() {
    std::lock_guard lock(mutex_);
    for (auto& g : gateways_) {
      for (auto& [id, c] : g->clients) {
        c.inbox.clear();
      }
    }
  }

  /// Every command sent, with the address of the gateway it went to.
  std::vector<std::pair<std::string, link::v2::Command>> sent() {
    std::lock_guard lock(mutex_);
    return sent_;
  }

  void set_network_thread(bool v) { network_thread_ = v; }

  // ---- transport ----

  void send_to_holder(std::string client_id, link::v2::Command cmd) override {
    std::lock_guard lock(mutex_);
    const cluster::client_target t(client_id);
    for (auto& g : gateways_) {
      if (g->linked && view(*g).holds(t)) {
        execute(*g, cmd);
      }
    }
  }

  void send_to_all(link::v2::Command cmd) override {
    std::lock_guard lock(mutex_);
    for (auto& g : gateways_) {
      if (g->linked) {
        execute(*g, cmd);
      }
    }
  }

  void send_each(cluster::command_builder build) override {
    std::lock_guard lock(mutex_);
    for (auto& g : gateways_) {
      link::v2::Command cmd;
      if (g->linked && build(view(*g), cmd)) {
        execute(*g, cmd);
      }
    }
  }

  void request_each(cluster::command_builder build, std::chrono::milliseconds,
                    cluster::gather_handler done) override {
    cluster::gather_result r;
    {
      std::lock_guard lock(mutex_);
      for (auto& g : gateways_) {
        link::v2::Command cmd;
        if (!build(view(*g), cmd)) {
          continue;
        }
        if (!g->linked || g->silent) {
          r.missing_gateways.push_back(g->address);
          continue;
        }
        r.replies.push_back({g->address, execute(*g, cmd)});
      }
    }
    done(std::move(r));
  }

  std::chrono::milliseconds default_timeout() const override {
    return std::chrono::milliseconds(100);
  }
  bool on_network_thread() const override { return network_thread_; }
  bool stopped() const override { return false; }

 private:
  /// A client connection that records what it is sent (WebSocket frames, decoded) and closes
  /// at once, leaving its uid and groups as a real client's close does.
  class recording_port final : public gwx::gateway::client_port {
   public:
    recording_port(gwx::gateway::client_directory& directory, client& c)
        : directory_(directory), c_(c) {}
    void attach(gwx::gateway::client_record& record) { record_ = &record; }

    gwx::gateway::client_state current_state() const override {
      return c_.closed ? gwx::gateway::client_state::closed : gwx::gateway::client_state::open;
    }
    gwx::gateway::send_status send(const gwx::gateway::wire_bytes& bytes) override {
      if (c_.closed) {
        return gwx::gateway::send_status::closed;
      }
      std::string frame = *bytes;
      codec::ws::frame_parser parser(frame.size(), codec::ws::role::client);
      const auto ev = parser.next(frame.data(), frame.size());
      c_.inbox.emplace_back(std::string(ev.data), ev.binary);
      return gwx::gateway::send_status::ok;
    }
    void close_gracefully(std::optional<std::pair<std::string_view, bool>> final_message) override {
      if (!c_.closed && final_message) {
        c_.inbox.emplace_back(std::string(final_message->first), final_message->second);
      }
      close();
    }
    void destroy(::gwx::gateway::close_cause, const std::string&) override { close(); }
    void close_with_reason(::gwx::gateway::close_cause, std::uint16_t,
                           const std::string&) override {
      close();
    }

   private:
    void close() {
      if (!c_.closed) {
        c_.closed = true;
        directory_.forget_membership(*record_);
      }
    }

    gwx::gateway::client_directory& directory_;
    client& c_;
    gwx::gateway::client_record* record_ = nullptr;
  };

  static cluster::gateway_view view(const gateway& g) {
    return cluster::gateway_view{g.id, g.address, g.linked};
  }

  client* find_locked(const std::string& id) {
    for (auto& g : gateways_) {
      auto it = g->clients.find(id);
      if (it == g->clients.end() || it->second.closed) {
        continue;
      }
      // Mirror what the gateway holds, for the test to read.
      auto& c = it->second;
      if (const auto* r = g->directory.find(id)) {
        c.uid = r->uid();
        c.groups = std::set<std::string>(r->groups().begin(), r->groups().end());
        c.session = r->session();
        c.session_seq = r->session_seq();
      }
      return &c;
    }
    return nullptr;
  }

  static void sort_unique(google::protobuf::RepeatedPtrField<std::string>& list) {
    std::sort(list.begin(), list.end());
    list.erase(std::unique(list.begin(), list.end()), list.end());
  }

  // Runs one command on one gateway, as its link would, and returns its reply.
  link::v2::Reply execute(gateway& g, const link::v2::Command& cmd) {
    sent_.emplace_back(g.address, cmd);
    link::v2::Reply reply;
    reply.set_request_id(cmd.request_id());
    g.executor.execute(cmd, reply);
    // What the link adds when it merges its loops' parts.
    auto& result = *reply.mutable_result();
    sort_unique(*result.mutable_uids());
    sort_unique(*result.mutable_groups());
    if (cmd.has_query() && cmd.query().kind() == link::v2::QUERY_KIND_STATS) {
      result.mutable_stats()->set_gateway_id(g.id);
      result.mutable_stats()->set_internal_address(g.address);
      result.clear_uids();
      result.clear_groups();
    }
    return reply;
  }

  std::mutex mutex_;
  std::vector<std::unique_ptr<gateway>> gateways_;
  std::map<std::string, std::uint64_t> epochs_;
  std::vector<std::pair<std::string, link::v2::Command>> sent_;
  std::uint64_t next_connection_ = 0;
  bool network_thread_ = false;
};

/// A fake cluster and a Gateway API over it: the base of API-level fixtures.
struct fake_api {
  std::shared_ptr<fake_cluster> cluster = std::make_shared<fake_cluster>();
  gateway_api api{cluster};
};

/// `v`, sorted: for comparing with the API's sorted lists.
inline std::vector<std::string> sorted(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  return v;
}

}  // namespace gwx::fakes
