#pragma once

// An in-memory cluster behind the transport interface: gateways holding clients with uids,
// groups and sessions, executing Commands and answering Queries the way gwx-gateway does, so the
// Gateway API and the apps can be tested without sockets or threads. Everything runs
// synchronously on the calling thread.

#include <algorithm>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "common/client_id.hpp"
#include "common/cluster/gateway_api.hpp"
#include "common/cluster/transport.hpp"
#include "common/cluster/types.hpp"

namespace gwx::fakes {

class fake_cluster final : public cluster::transport {
 public:
  struct client {
    std::string uid;
    std::set<std::string> groups;
    session_map session;
    std::uint64_t session_seq = 0;
    std::vector<message> inbox;
    bool closed = false;
  };
  struct gateway {
    std::string id;
    std::string address;
    bool linked = true;
    /// Linked but never answers requests (a hung gateway).
    bool silent = false;
    std::map<std::string, client> clients;
  };

  /// Adds a gateway at "127.0.0.1:<port>" with `epoch`.
  gateway& add_gateway(std::uint16_t port, std::uint64_t epoch) {
    std::lock_guard lock(mutex_);
    gateways_.push_back(std::make_unique<gateway>());
    auto& g = *gateways_.back();
    g.id = epoch_to_hex(epoch);
    g.address = "127.0.0.1:" + std::to_string(port);
    epochs_[g.id] = epoch;
    return g;
  }

  /// Connects a client to `g`; returns its client_id.
  std::string connect(gateway& g) {
    std::lock_guard lock(mutex_);
    const auto port =
        static_cast<std::uint16_t>(std::stoi(g.address.substr(g.address.rfind(':') + 1)));
    auto id = make_client_id("127.0.0.1", port, epochs_[g.id], ++next_connection_);
    g.clients[id];
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
  std::vector<std::pair<std::string, link::v1::Command>> sent() {
    std::lock_guard lock(mutex_);
    return sent_;
  }

  void set_network_thread(bool v) { network_thread_ = v; }

  // ---- transport ----

  void send_to_holder(std::string client_id, link::v1::Command cmd) override {
    std::lock_guard lock(mutex_);
    const cluster::client_target t(client_id);
    for (auto& g : gateways_) {
      if (g->linked && view(*g).holds(t)) {
        execute(*g, cmd);
      }
    }
  }

  void send_to_all(link::v1::Command cmd) override {
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
      link::v1::Command cmd;
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
        link::v1::Command cmd;
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
  static cluster::gateway_view view(const gateway& g) {
    return cluster::gateway_view{g.id, g.address, g.linked};
  }

  client* find_locked(const std::string& id) {
    for (auto& g : gateways_) {
      if (auto it = g->clients.find(id); it != g->clients.end() && !it->second.closed) {
        return &it->second;
      }
    }
    return nullptr;
  }

  static message to_message(const link::v1::Message& m) { return message(m.data(), m.binary()); }

  static void deliver(client& c, const link::v1::Message& m) {
    if (!c.closed) {
      c.inbox.push_back(to_message(m));
    }
  }

  // Runs one command on one gateway, as gwx-gateway would, and returns its reply.
  link::v1::Reply execute(gateway& g, const link::v1::Command& cmd) {
    sent_.emplace_back(g.address, cmd);
    link::v1::Reply reply;
    reply.set_request_id(cmd.request_id());
    const auto held = [&g](const std::string& id) -> client* {
      const auto it = g.clients.find(id);
      return it == g.clients.end() || it->second.closed ? nullptr : &it->second;
    };
    using C = link::v1::Command;
    switch (cmd.op_case()) {
      case C::kSendToClients:
        for (const auto& id : cmd.send_to_clients().client_ids()) {
          if (auto* c = held(id)) {
            deliver(*c, cmd.send_to_clients().message());
          }
        }
        break;
      case C::kSendToAll: {
        const auto& op = cmd.send_to_all();
        const std::set<std::string> only(op.only_client_ids().begin(), op.only_client_ids().end());
        const std::set<std::string> ex(op.exclude_client_ids().begin(),
                                       op.exclude_client_ids().end());
        for (auto& [id, c] : g.clients) {
          if ((only.empty() || only.count(id) != 0) && ex.count(id) == 0) {
            deliver(c, op.message());
          }
        }
        break;
      }
      case C::kSendToGroups: {
        const auto& op = cmd.send_to_groups();
        const std::set<std::string> ex(op.exclude_client_ids().begin(),
                                       op.exclude_client_ids().end());
        for (auto& [id, c] : g.clients) {
          const bool member =
              std::any_of(op.groups().begin(), op.groups().end(),
                          [&c](const std::string& grp) { return c.groups.count(grp) != 0; });
          if (member && ex.count(id) == 0) {
            deliver(c, op.message());
          }
        }
        break;
      }
      case C::kSendToUids: {
        const auto& op = cmd.send_to_uids();
        for (auto& [id, c] : g.clients) {
          if (!c.uid.empty() &&
              std::find(op.uids().begin(), op.uids().end(), c.uid) != op.uids().end()) {
            deliver(c, op.message());
          }
        }
        break;
      }
      case C::kBindUid:
        if (auto* c = held(cmd.bind_uid().client_id())) {
          c->uid = cmd.bind_uid().uid();
        } else if (cmd.request_id() != 0) {
          reply.set_error("offline");
        }
        break;
      case C::kUnbindUid:
        if (auto* c = held(cmd.unbind_uid().client_id())) {
          c->uid.clear();
        }
        break;
      case C::kJoinGroup:
        if (auto* c = held(cmd.join_group().client_id())) {
          c->groups.insert(cmd.join_group().group());
        }
        break;
      case C::kLeaveGroup:
        if (auto* c = held(cmd.leave_group().client_id())) {
          c->groups.erase(cmd.leave_group().group());
        }
        break;
      case C::kUngroup:
        for (auto& [id, c] : g.clients) {
          c.groups.erase(cmd.ungroup().group());
        }
        break;
      case C::kSessionWrite:
        if (auto* c = held(cmd.session_write().client_id())) {
          const auto& w = cmd.session_write();
          if (!w.merge()) {
            c->session.clear();
          }
          for (const auto& [k, v] : w.session()) {
            c->session[k] = v;
          }
          for (const auto& k : w.erase_keys()) {
            c->session.erase(k);
          }
          c->session_seq = std::max(c->session_seq, w.writer_seq());
        }
        break;
      case C::kCloseClient:
        if (auto* c = held(cmd.close_client().client_id())) {
          if (cmd.close_client().has_final_message() && !cmd.close_client().immediate()) {
            deliver(*c, cmd.close_client().final_message());
          }
          c->closed = true;
          c->uid.clear();
          c->groups.clear();
        }
        break;
      case C::kQuery:
        answer(g, cmd.query(), *reply.mutable_result());
        break;
      default:
        break;
    }
    return reply;
  }

  static void answer(gateway& g, const link::v1::Query& q, link::v1::QueryResult& r) {
    const auto live = [&g](const std::string& id) -> client* {
      const auto it = g.clients.find(id);
      return it == g.clients.end() || it->second.closed ? nullptr : &it->second;
    };
    const auto first_group = q.groups_size() > 0 ? q.groups(0) : std::string();
    const auto first_id = q.client_ids_size() > 0 ? q.client_ids(0) : std::string();
    std::set<std::string> set;
    switch (q.kind()) {
      case link::v1::QUERY_KIND_ALL_CLIENT_COUNT:
        for (auto& [id, c] : g.clients) {
          r.set_count(r.count() + (c.closed ? 0 : 1));
        }
        break;
      case link::v1::QUERY_KIND_CLIENT_COUNT_BY_GROUPS:
        for (const auto& grp : q.groups()) {
          auto& n = (*r.mutable_counts())[grp];
          for (auto& [id, c] : g.clients) {
            n += (!c.closed && c.groups.count(grp) != 0) ? 1 : 0;
          }
        }
        break;
      case link::v1::QUERY_KIND_CLIENT_IDS_BY_GROUP:
      case link::v1::QUERY_KIND_CLIENT_SESSIONS_BY_GROUP:
        for (auto& [id, c] : g.clients) {
          if (!c.closed && c.groups.count(first_group) != 0) {
            if (q.kind() == link::v1::QUERY_KIND_CLIENT_IDS_BY_GROUP) {
              r.add_client_ids(id);
            } else {
              (*r.mutable_sessions())[id].mutable_values()->insert(c.session.begin(),
                                                                   c.session.end());
            }
          }
        }
        break;
      case link::v1::QUERY_KIND_ALL_CLIENT_IDS:
        for (auto& [id, c] : g.clients) {
          if (!c.closed) {
            r.add_client_ids(id);
          }
        }
        break;
      case link::v1::QUERY_KIND_UIDS_BY_GROUP:
      case link::v1::QUERY_KIND_ALL_UIDS:
        for (auto& [id, c] : g.clients) {
          if (!c.closed && !c.uid.empty() &&
              (q.kind() == link::v1::QUERY_KIND_ALL_UIDS || c.groups.count(first_group) != 0)) {
            set.insert(c.uid);
          }
        }
        for (const auto& u : set) {
          r.add_uids(u);
        }
        break;
      case link::v1::QUERY_KIND_ALL_GROUP_IDS:
        for (auto& [id, c] : g.clients) {
          if (!c.closed) {
            set.insert(c.groups.begin(), c.groups.end());
          }
        }
        for (const auto& grp : set) {
          r.add_groups(grp);
        }
        break;
      case link::v1::QUERY_KIND_GROUPS_OF_CLIENT:
        if (auto* c = live(first_id)) {
          for (const auto& grp : c->groups) {
            r.add_groups(grp);
          }
        }
        break;
      case link::v1::QUERY_KIND_SESSION:
        if (auto* c = live(first_id)) {
          (*r.mutable_sessions())[first_id].mutable_values()->insert(c->session.begin(),
                                                                     c->session.end());
        }
        break;
      case link::v1::QUERY_KIND_IS_ONLINE:
        for (const auto& id : q.client_ids()) {
          if (live(id) != nullptr) {
            r.add_client_ids(id);
          }
        }
        break;
      case link::v1::QUERY_KIND_CLIENT_IDS_BY_UIDS:
        for (const auto& uid : q.uids()) {
          for (auto& [id, c] : g.clients) {
            if (!c.closed && c.uid == uid) {
              (*r.mutable_clients_by_uid())[uid].add_values(id);
            }
          }
        }
        break;
      case link::v1::QUERY_KIND_UID_OF_CLIENT:
        if (auto* c = live(first_id); c != nullptr && !c->uid.empty()) {
          r.add_uids(c->uid);
        }
        break;
      case link::v1::QUERY_KIND_STATS: {
        auto* s = r.mutable_stats();
        s->set_gateway_id(g.id);
        s->set_internal_address(g.address);
        for (auto& [id, c] : g.clients) {
          s->set_clients(s->clients() + (c.closed ? 0 : 1));
        }
        break;
      }
      default:
        break;
    }
  }

  std::mutex mutex_;
  std::vector<std::unique_ptr<gateway>> gateways_;
  std::map<std::string, std::uint64_t> epochs_;
  std::vector<std::pair<std::string, link::v1::Command>> sent_;
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
