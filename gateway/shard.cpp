#include "gateway/shard.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <set>

#include "common/client_id.hpp"
#include "gateway/gateway_server.hpp"
#include "gateway/worker_link.hpp"

namespace gwx::gateway {
namespace {

constexpr auto k_warn_interval = std::chrono::seconds(10);

bool contains(const google::protobuf::RepeatedPtrField<std::string>& list, const std::string& s) {
  return std::find(list.begin(), list.end(), s) != list.end();
}

}  // namespace

shard::shard(gateway_server& server, unsigned index, asio::io_context& io)
    : server_(server), index_(index), io_(io) {}

void shard::accept(const listener_config& listener, asio::ip::tcp::socket socket) {
  const std::uint64_t connection = (next_connection_++ << 8) | index_;
  auto id = make_client_id(server_.advertised_ip(), server_.advertised_port(), server_.epoch(),
                           connection);
  auto session = std::make_shared<client_session>(*this, listener, std::move(socket), connection,
                                                  std::move(id));
  clients_.emplace(connection, session);
  session->start();
}

client_session* shard::find(const std::string& client_id) {
  const auto parts = parse_client_id(client_id);
  if (!parts || parts->epoch != server_.epoch() || parts->loop() != index_) {
    return nullptr;
  }
  const auto it = clients_.find(parts->connection);
  if (it == clients_.end() || it->second->id() != client_id || !it->second->addressable()) {
    return nullptr;
  }
  return it->second.get();
}

client_session* shard::find_pending(const std::string& client_id) {
  const auto parts = parse_client_id(client_id);
  if (!parts || parts->epoch != server_.epoch() || parts->loop() != index_) {
    return nullptr;
  }
  const auto it = clients_.find(parts->connection);
  return it == clients_.end() || it->second->id() != client_id ? nullptr : it->second.get();
}

void shard::fill_client(const client_session& c, link::v1::ClientInfo& info) const {
  info.set_client_id(c.id());
  info.set_remote_address(c.remote_ip());
  info.set_remote_port(c.remote_port());
  info.set_gateway_address(server_.advertised());
  info.set_listener(c.listener().bound_url);
  info.set_uid(c.uid);
  info.mutable_session()->insert(c.session.begin(), c.session.end());
  info.set_session_seq(c.session_seq);
}

void shard::on_connected(client_session& c, const codec::ws::http_request* request,
                         bool decision_required) {
  c.announced = true;
  auto frame = std::make_unique<link::v1::Frame>();
  auto* ev = frame->mutable_event();
  ev->set_kind(link::v1::EVENT_KIND_CONNECT);
  fill_client(c, *ev->mutable_client());
  if (request != nullptr) {
    auto* ws = ev->mutable_websocket();
    ws->set_method(request->method);
    ws->set_path(request->path);
    ws->set_query(request->query);
    auto& headers = *ws->mutable_headers();
    for (const auto& [name, value] : request->headers) {
      auto [it, inserted] = headers.try_emplace(name, value);
      if (!inserted) {
        it->second.append(", ").append(value);
      }
    }
  }
  ev->set_decision_required(decision_required);
  if (!route(c, std::move(frame)) && decision_required) {
    c.on_connect_decision(503, "no worker available");
  }
}

void shard::on_message(client_session& c, std::string_view payload, bool binary) {
  ++messages_in_;
  auto frame = std::make_unique<link::v1::Frame>();
  auto* ev = frame->mutable_event();
  ev->set_kind(link::v1::EVENT_KIND_MESSAGE);
  fill_client(c, *ev->mutable_client());
  ev->set_payload(payload.data(), payload.size());
  ev->set_binary(binary);
  route(c, std::move(frame));
}

void shard::on_closed(client_session& c, const std::string& reason) {
  spdlog::debug("client {} closed: {}", c.id(), reason);
  if (c.announced) {
    auto frame = std::make_unique<link::v1::Frame>();
    auto* ev = frame->mutable_event();
    ev->set_kind(link::v1::EVENT_KIND_CLOSE);
    fill_client(c, *ev->mutable_client());
    ev->set_close_reason(reason);
    unbind(c);
    leave_all(c);
    route(c, std::move(frame));
  }
  server_.connections_of(c.listener()).fetch_sub(1, std::memory_order_relaxed);
  clients_.erase(c.connection());
}

bool shard::route(client_session& c, std::unique_ptr<link::v1::Frame> frame) {
  const worker_ref* target = nullptr;
  if (c.worker_id != 0) {
    for (const auto& w : workers_) {
      if (w.id == c.worker_id) {
        target = &w;
        break;
      }
    }
  }
  if (target == nullptr) {
    if (workers_.empty()) {
      warn_no_worker();
      return false;
    }
    target = &workers_[next_worker_++ % workers_.size()];
    c.worker_id = target->id;
  }
  const auto& link = target->link;
  if (link->loop() == index_) {
    link->send_event(std::move(frame));
  } else {
    asio::post(server_.shard_at(link->loop()).io(),
               [link, f = std::move(frame)]() mutable { link->send_event(std::move(f)); });
  }
  return true;
}

void shard::warn_no_worker() {
  ++dropped_no_worker_;
  const auto now = std::chrono::steady_clock::now();
  if (now - last_no_worker_log_ >= k_warn_interval) {
    spdlog::warn("no worker connected: {} client event(s) dropped so far on loop {}",
                 dropped_no_worker_, index_);
    last_no_worker_log_ = now;
  }
}

void shard::set_workers(std::vector<worker_ref> workers) {
  workers_ = std::move(workers);
  next_worker_ = 0;
}

void shard::join(client_session& c, const std::string& group) {
  const auto it = std::lower_bound(c.groups.begin(), c.groups.end(), group);
  if (it != c.groups.end() && *it == group) {
    return;
  }
  c.groups.insert(it, group);
  groups_[group].insert(&c);
}

void shard::leave(client_session& c, const std::string& group) {
  const auto it = std::lower_bound(c.groups.begin(), c.groups.end(), group);
  if (it == c.groups.end() || *it != group) {
    return;
  }
  // The index first: `group` may refer to the very string erased from c.groups below.
  if (auto g = groups_.find(group); g != groups_.end()) {
    g->second.erase(&c);
    if (g->second.empty()) {
      groups_.erase(g);
    }
  }
  c.groups.erase(it);
}

void shard::leave_all(client_session& c) {
  for (const auto& group : c.groups) {
    if (auto g = groups_.find(group); g != groups_.end()) {
      g->second.erase(&c);
      if (g->second.empty()) {
        groups_.erase(g);
      }
    }
  }
  c.groups.clear();
}

void shard::bind(client_session& c, const std::string& uid) {
  if (c.uid == uid) {
    return;
  }
  unbind(c);
  if (uid.empty()) {
    return;
  }
  c.uid = uid;
  uids_[uid].insert(&c);
}

void shard::unbind(client_session& c) {
  if (c.uid.empty()) {
    return;
  }
  if (auto u = uids_.find(c.uid); u != uids_.end()) {
    u->second.erase(&c);
    if (u->second.empty()) {
      uids_.erase(u);
    }
  }
  c.uid.clear();
}

void shard::execute(const link::v1::Command& cmd, link::v1::Reply& reply) {
  using link::v1::Command;
  const auto offline = [&reply] { reply.set_error("offline"); };
  switch (cmd.op_case()) {
    case Command::kSendToClients: {
      const auto& op = cmd.send_to_clients();
      encode_cache cache(op.message().data(), op.message().binary());
      std::size_t sent = 0;
      for (const auto& id : op.client_ids()) {
        if (auto* c = find(id); c != nullptr && c->send(cache.get(c->listener().kind))) {
          ++sent;
        }
      }
      messages_out_ += sent;
      if (sent == 0) {
        offline();
      }
      break;
    }
    case Command::kSendToAll: {
      const auto& op = cmd.send_to_all();
      encode_cache cache(op.message().data(), op.message().binary());
      if (op.only_client_ids_size() > 0) {
        for (const auto& id : op.only_client_ids()) {
          if (auto* c = find(id); c != nullptr && !contains(op.exclude_client_ids(), id)) {
            messages_out_ += c->send(cache.get(c->listener().kind)) ? 1 : 0;
          }
        }
        break;
      }
      // Sessions may close (slow-client policy) while we iterate: collect first.
      std::vector<client_session*> targets;
      targets.reserve(clients_.size());
      for (auto& [conn, c] : clients_) {
        if (c->addressable() && !contains(op.exclude_client_ids(), c->id())) {
          targets.push_back(c.get());
        }
      }
      for (auto* c : targets) {
        messages_out_ += c->send(cache.get(c->listener().kind)) ? 1 : 0;
      }
      break;
    }
    case Command::kSendToGroups: {
      const auto& op = cmd.send_to_groups();
      encode_cache cache(op.message().data(), op.message().binary());
      std::vector<client_session*> targets;
      for (const auto& g : op.groups()) {
        if (auto it = groups_.find(g); it != groups_.end()) {
          targets.insert(targets.end(), it->second.begin(), it->second.end());
        }
      }
      if (op.groups_size() > 1) {
        std::sort(targets.begin(), targets.end());
        targets.erase(std::unique(targets.begin(), targets.end()), targets.end());
      }
      for (auto* c : targets) {
        if (!contains(op.exclude_client_ids(), c->id())) {
          messages_out_ += c->send(cache.get(c->listener().kind)) ? 1 : 0;
        }
      }
      break;
    }
    case Command::kSendToUids: {
      const auto& op = cmd.send_to_uids();
      encode_cache cache(op.message().data(), op.message().binary());
      std::vector<client_session*> targets;
      for (const auto& u : op.uids()) {
        if (auto it = uids_.find(u); it != uids_.end()) {
          targets.insert(targets.end(), it->second.begin(), it->second.end());
        }
      }
      for (auto* c : targets) {
        messages_out_ += c->send(cache.get(c->listener().kind)) ? 1 : 0;
      }
      break;
    }
    case Command::kBindUid:
      if (auto* c = find(cmd.bind_uid().client_id())) {
        bind(*c, cmd.bind_uid().uid());
      } else {
        offline();
      }
      break;
    case Command::kUnbindUid:
      if (auto* c = find(cmd.unbind_uid().client_id())) {
        unbind(*c);
      } else {
        offline();
      }
      break;
    case Command::kJoinGroup:
      if (auto* c = find(cmd.join_group().client_id()); c != nullptr) {
        if (!cmd.join_group().group().empty()) {
          join(*c, cmd.join_group().group());
        }
      } else {
        offline();
      }
      break;
    case Command::kLeaveGroup:
      if (auto* c = find(cmd.leave_group().client_id())) {
        leave(*c, cmd.leave_group().group());
      } else {
        offline();
      }
      break;
    case Command::kUngroup:
      if (auto it = groups_.find(cmd.ungroup().group()); it != groups_.end()) {
        const auto members = it->second;
        for (auto* c : members) {
          leave(*c, cmd.ungroup().group());
        }
      }
      break;
    case Command::kSessionWrite: {
      const auto& op = cmd.session_write();
      auto* c = find(op.client_id());
      if (c == nullptr) {
        offline();
        break;
      }
      if (!op.merge()) {
        c->session.clear();
      }
      for (const auto& [k, v] : op.session()) {
        c->session[k] = v;
      }
      for (const auto& k : op.erase_keys()) {
        c->session.erase(k);
      }
      c->session_seq = std::max(c->session_seq, op.writer_seq());
      break;
    }
    case Command::kCloseClient: {
      const auto& op = cmd.close_client();
      auto* c = find(op.client_id());
      if (c == nullptr) {
        offline();
      } else if (op.immediate()) {
        c->destroy("destroyed by a worker");
      } else if (op.has_final_message()) {
        c->close_gracefully(std::make_pair(op.final_message().data(), op.final_message().binary()));
      } else {
        c->close_gracefully(std::nullopt);
      }
      break;
    }
    case Command::kQuery:
      query(cmd.query(), *reply.mutable_result());
      break;
    case Command::OP_NOT_SET:
      reply.set_error("empty command");
      break;
  }
}

void shard::query(const link::v1::Query& q, link::v1::QueryResult& r) {
  using link::v1::QueryKind;
  const auto first = [](const auto& list) -> std::string {
    return list.empty() ? std::string{} : list[0];
  };
  switch (q.kind()) {
    case link::v1::QUERY_KIND_ALL_CLIENT_COUNT: {
      std::uint64_t n = 0;
      for (const auto& [conn, c] : clients_) {
        n += c->addressable() ? 1 : 0;
      }
      r.set_count(n);
      break;
    }
    case link::v1::QUERY_KIND_CLIENT_COUNT_BY_GROUPS:
      for (const auto& g : q.groups()) {
        const auto it = groups_.find(g);
        (*r.mutable_counts())[g] = it == groups_.end() ? 0 : it->second.size();
      }
      break;
    case link::v1::QUERY_KIND_CLIENT_IDS_BY_GROUP:
      if (auto it = groups_.find(first(q.groups())); it != groups_.end()) {
        for (const auto* c : it->second) {
          r.add_client_ids(c->id());
        }
      }
      break;
    case link::v1::QUERY_KIND_CLIENT_SESSIONS_BY_GROUP:
      if (auto it = groups_.find(first(q.groups())); it != groups_.end()) {
        for (const auto* c : it->second) {
          auto& s = (*r.mutable_sessions())[c->id()];
          s.mutable_values()->insert(c->session.begin(), c->session.end());
        }
      }
      break;
    case link::v1::QUERY_KIND_ALL_CLIENT_IDS:
      for (const auto& [conn, c] : clients_) {
        if (c->addressable()) {
          r.add_client_ids(c->id());
        }
      }
      break;
    case link::v1::QUERY_KIND_UIDS_BY_GROUP:
      if (auto it = groups_.find(first(q.groups())); it != groups_.end()) {
        std::set<std::string> uids;
        for (const auto* c : it->second) {
          if (!c->uid.empty()) {
            uids.insert(c->uid);
          }
        }
        r.mutable_uids()->Add(uids.begin(), uids.end());
      }
      break;
    case link::v1::QUERY_KIND_ALL_UIDS:
    case link::v1::QUERY_KIND_STATS:
      for (const auto& [uid, members] : uids_) {
        r.add_uids(uid);
      }
      if (q.kind() == link::v1::QUERY_KIND_STATS) {
        for (const auto& [group, members] : groups_) {
          r.add_groups(group);
        }
        std::uint64_t n = 0;
        for (const auto& [conn, c] : clients_) {
          n += c->addressable() ? 1 : 0;
        }
        r.mutable_stats()->set_clients(n);
        r.mutable_stats()->set_messages_in(messages_in_);
        r.mutable_stats()->set_messages_out(messages_out_);
      }
      break;
    case link::v1::QUERY_KIND_ALL_GROUP_IDS:
      for (const auto& [group, members] : groups_) {
        r.add_groups(group);
      }
      break;
    case link::v1::QUERY_KIND_GROUPS_OF_CLIENT:
      if (const auto* c = find(first(q.client_ids()))) {
        r.mutable_groups()->Add(c->groups.begin(), c->groups.end());
      }
      break;
    case link::v1::QUERY_KIND_SESSION:
      if (const auto* c = find(first(q.client_ids()))) {
        auto& s = (*r.mutable_sessions())[c->id()];
        s.mutable_values()->insert(c->session.begin(), c->session.end());
      }
      break;
    case link::v1::QUERY_KIND_IS_ONLINE:
      for (const auto& id : q.client_ids()) {
        if (find(id) != nullptr) {
          r.add_client_ids(id);
        }
      }
      break;
    case link::v1::QUERY_KIND_CLIENT_IDS_BY_UIDS:
      for (const auto& u : q.uids()) {
        if (auto it = uids_.find(u); it != uids_.end()) {
          auto& list = (*r.mutable_clients_by_uid())[u];
          for (const auto* c : it->second) {
            list.add_values(c->id());
          }
        }
      }
      break;
    case link::v1::QUERY_KIND_UID_OF_CLIENT:
      if (const auto* c = find(first(q.client_ids())); c != nullptr && !c->uid.empty()) {
        r.add_uids(c->uid);
      }
      break;
    default:
      break;
  }
}

}  // namespace gwx::gateway
