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
// RFC 6455 registry: the server is overloaded or unable to serve now; retry later.
constexpr std::uint16_t k_close_try_again_later = 1013;

bool contains(const google::protobuf::RepeatedPtrField<std::string>& list, const std::string& s) {
  return std::find(list.begin(), list.end(), s) != list.end();
}

}  // namespace

shard::shard(gateway_server& server, unsigned index, asio::io_context& io)
    : server_(server), index_(index), io_(io), sweep_timer_(io) {}

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

std::shared_ptr<link::v1::Frame> shard::make_event(client_session& c, link::v1::EventKind kind) {
  auto frame = std::make_shared<link::v1::Frame>();
  auto* ev = frame->mutable_event();
  // [connection number without its loop byte][per-client sequence, 16 bits][loop]: an
  // acknowledgement finds its shard and client without any table.
  const std::uint64_t seq = ++c.next_event_seq;
  ev->set_event_id(((c.connection() >> 8) << 24) | (seq << 8) | index_);
  ev->set_kind(kind);
  fill_client(c, *ev->mutable_client());
  return frame;
}

void shard::on_connected(client_session& c, const codec::ws::http_request* request,
                         bool decision_required) {
  c.announced = true;
  auto frame = make_event(c, link::v1::EVENT_KIND_CONNECT);
  auto* ev = frame->mutable_event();
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
  if (decision_required) {
    // Nobody can decide: answer now rather than keep the client hanging in its handshake.
    bool wait = false;
    if (pick(c, wait) == nullptr && !wait) {
      warn_no_worker();
      c.on_connect_decision(503, "no worker available");
      return;
    }
  }
  dispatch(c, std::move(frame));
}

void shard::on_message(client_session& c, std::string_view payload, bool binary) {
  ++messages_in_;
  c.listener().metrics.messages_in.inc();
  c.listener().metrics.bytes_in.inc(payload.size());
  auto frame = make_event(c, link::v1::EVENT_KIND_MESSAGE);
  frame->mutable_event()->set_payload(payload.data(), payload.size());
  frame->mutable_event()->set_binary(binary);
  dispatch(c, std::move(frame));
}

void shard::on_closed(client_session& c, const std::string& reason) {
  spdlog::debug("client {} closed: {}", c.id(), reason);
  server_.connections_of(c.listener()).fetch_sub(1, std::memory_order_relaxed);
  c.listener().metrics.count_close(reason);
  if (c.announced) {
    auto frame = make_event(c, link::v1::EVENT_KIND_CLOSE);
    frame->mutable_event()->set_close_reason(reason);
    unbind(c);
    leave_all(c);
    dispatch(c, std::move(frame));
  }
  forget_if_done(c);
}

void shard::forget_if_done(client_session& c) {
  if (c.current_state() == client_session::state::closed && c.unacked.empty() && c.held.empty()) {
    waiting_.erase(c.connection());
    clients_.erase(c.connection());
  }
}

const worker_ref* shard::pick(client_session& c, bool& wait) {
  wait = false;
  if (c.worker_id != 0) {
    for (const auto& w : workers_) {
      if (w.id == c.worker_id) {
        if (!w.draining) {
          return &w;
        }
        if (!c.unacked.empty()) {
          // Its events must be handled before the next one goes elsewhere: keep the order.
          wait = true;
          return nullptr;
        }
        break;
      }
    }
  }
  for (std::size_t i = 0; i < workers_.size(); ++i) {
    const auto& w = workers_[next_worker_++ % workers_.size()];
    if (!w.draining) {
      c.worker_id = w.id;
      return &w;
    }
  }
  return nullptr;
}

bool shard::dispatch(client_session& c, event_ptr event) {
  if (!c.held.empty()) {
    hold(c, std::move(event));
    return false;
  }
  bool wait = false;
  const auto* w = pick(c, wait);
  if (w == nullptr) {
    if (!wait) {
      warn_no_worker();
    }
    hold(c, std::move(event));
    return false;
  }
  send_to(c, *w, std::move(event));
  return true;
}

void shard::send_to(client_session& c, const worker_ref& w, event_ptr event) {
  if (!server_.config().at_most_once) {
    c.unacked.push_back({event, std::chrono::steady_clock::now()});
    server_.events().in_flight.inc();
  }
  const auto& link = w.link;
  if (link->loop() == index_) {
    link->send_event(event);
  } else {
    asio::post(server_.shard_at(link->loop()).io(),
               [link, ev = std::move(event)]() mutable { link->send_event(ev); });
  }
}

void shard::hold(client_session& c, event_ptr event) {
  const auto& cfg = server_.config();
  const std::size_t bytes = event->ByteSizeLong();
  const bool over =
      c.held.size() + 1 > cfg.queue_max_events || c.held_bytes + bytes > cfg.queue_max_bytes;
  if (over && !cfg.queue_close_client && !c.held.empty()) {
    drop_held(c, 1, "event queue bound reached: oldest events dropped");
  }
  c.held_bytes += bytes;
  c.held.push_back({std::move(event), bytes, std::chrono::steady_clock::now()});
  server_.events().queued.inc();
  waiting_.insert(c.connection());
  if (over && cfg.queue_close_client && c.current_state() != client_session::state::closed) {
    // After queuing this event, so the worker later sees it before the client's CLOSE.
    warn_queue("event queue bound reached: client closed");
    c.close_with_reason(k_close_try_again_later, "event queue full: no worker took its events");
  }
}

void shard::drop_held(client_session& c, std::size_t count, const char* why) {
  for (std::size_t i = 0; i < count && !c.held.empty(); ++i) {
    c.held_bytes -= c.held.pop_front().bytes;
    ++dropped_;
    server_.events().queued.dec();
    server_.events().dropped_queue_bound.inc();
  }
  warn_queue(why);
}

void shard::flush_held(client_session& c) {
  while (!c.held.empty()) {
    bool wait = false;
    const auto* w = pick(c, wait);
    if (w == nullptr) {
      return;
    }
    auto item = c.held.pop_front();
    server_.events().queued.dec();
    c.held_bytes -= item.bytes;
    send_to(c, *w, std::move(item.frame));
  }
  waiting_.erase(c.connection());
  forget_if_done(c);
}

void shard::on_acks(const std::vector<std::uint64_t>& event_ids) {
  for (const auto id : event_ids) {
    const std::uint64_t connection = ((id >> 24) << 8) | index_;
    const auto it = clients_.find(connection);
    if (it == clients_.end()) {
      continue;
    }
    auto& c = *it->second;
    const auto now = std::chrono::steady_clock::now();
    c.unacked.erase_first([&](const sent_event& e) {
      if (e.frame->event().event_id() != id) {
        return false;
      }
      server_.events().in_flight.dec();
      server_.events().round_trip.observe(now - e.sent);
      return true;
    });
    if (c.unacked.empty()) {
      if (!c.held.empty()) {
        flush_held(c);
      } else {
        forget_if_done(c);
      }
    }
  }
}

void shard::warn_no_worker() {
  warn_queue("no worker available: client events are queued");
}

void shard::warn_queue(const char* what) {
  auto& w = queue_warnings_[what];
  ++w.count;
  const auto now = std::chrono::steady_clock::now();
  if (w.last_log == std::chrono::steady_clock::time_point{} ||
      now - w.last_log >= k_warn_interval) {
    spdlog::warn("loop {}: {} ({} such event(s) so far; {} dropped by the queue policy)", index_,
                 what, w.count, dropped_);
    w.last_log = now;
  }
}

event_counts shard::events() const {
  event_counts out;
  for (const auto& [conn, c] : clients_) {
    out.queued += c->held.size();
    out.in_flight += c->unacked.size();
  }
  out.redelivered = redelivered_;
  out.dropped = dropped_;
  return out;
}

void shard::start() {
  sweep();
}

void shard::shutdown(const std::string& goodbye) {
  std::vector<std::shared_ptr<client_session>> all;
  all.reserve(clients_.size());
  for (auto& [conn, c] : clients_) {
    all.push_back(c);
  }
  for (auto& c : all) {
    c->go_away(goodbye);
  }
}

shard::drain_state shard::remaining() const {
  drain_state out;
  for (const auto& [conn, c] : clients_) {
    out.open_sockets += c->current_state() != client_session::state::closed ? 1 : 0;
    out.pending_events += c->held.size() + c->unacked.size();
  }
  return out;
}

void shard::sweep() {
  const auto& cfg = server_.config();
  const auto now = std::chrono::steady_clock::now();
  std::vector<client_session*> expired;
  for (const auto conn : waiting_) {
    const auto it = clients_.find(conn);
    if (it != clients_.end() && !it->second->held.empty() &&
        now - it->second->held.front().since > cfg.queue_max_age) {
      expired.push_back(it->second.get());
    }
  }
  for (auto* c : expired) {
    if (cfg.queue_close_client && c->current_state() != client_session::state::closed) {
      warn_queue("queued events too old: client closed");
      c->close_with_reason(k_close_try_again_later, "queued events waited too long for a worker");
      continue;
    }
    std::size_t old = 0;
    // Count from the front: the queue is in arrival order.
    auto all = c->held.take_all();
    c->held_bytes = 0;
    for (auto& item : all) {
      if (now - item.since > cfg.queue_max_age) {
        ++old;
        ++dropped_;
        server_.events().queued.dec();
        server_.events().dropped_queue_age.inc();
        continue;
      }
      c->held_bytes += item.bytes;
      c->held.push_back(std::move(item));
    }
    if (old > 0) {
      warn_queue("queued events older than the age bound dropped");
    }
    if (c->held.empty()) {
      waiting_.erase(c->connection());
      forget_if_done(*c);
    }
  }
  sweep_timer_.expires_after(std::chrono::milliseconds(250));
  sweep_timer_.async_wait([this](std::error_code ec) {
    if (!ec) {
      sweep();
    }
  });
}

void shard::set_workers(std::vector<worker_ref> workers) {
  workers_ = std::move(workers);
  next_worker_ = 0;
  const auto linked = [this](std::uint64_t id) {
    return std::any_of(workers_.begin(), workers_.end(),
                       [id](const worker_ref& w) { return w.id == id; });
  };
  // Collect first: flushing may close or forget clients.
  std::vector<std::shared_ptr<client_session>> affected;
  for (auto& [conn, c] : clients_) {
    if ((c->worker_id != 0 && !linked(c->worker_id)) || !c->held.empty() ||
        (!c->unacked.empty() && c->worker_id == 0)) {
      affected.push_back(c);
    }
  }
  for (auto& c : affected) {
    if (c->worker_id != 0 && !linked(c->worker_id)) {
      // Its worker went away: what it did not acknowledge goes first, flagged, in order.
      auto lost = c->unacked.take_all();
      if (!lost.empty()) {
        auto rest = c->held.take_all();
        const auto now = std::chrono::steady_clock::now();
        server_.events().in_flight.dec(static_cast<std::int64_t>(lost.size()));
        server_.events().queued.inc(static_cast<std::int64_t>(lost.size()));
        server_.events().redelivered.inc(lost.size());
        for (auto& e : lost) {
          auto copy = std::make_shared<link::v1::Frame>(*e.frame);
          copy->mutable_event()->set_redelivered(true);
          ++redelivered_;
          const std::size_t bytes = copy->ByteSizeLong();
          c->held_bytes += bytes;
          c->held.push_back({std::move(copy), bytes, now});
        }
        for (auto& item : rest) {
          c->held.push_back(std::move(item));
        }
        waiting_.insert(c->connection());
      }
      c->worker_id = 0;
    }
    if (!c->held.empty()) {
      flush_held(*c);
    }
  }
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
    case Command::kDrainWorker:  // handled by the link, never routed to a shard
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
        auto* st = r.mutable_stats();
        st->set_clients(n);
        st->set_messages_in(messages_in_);
        st->set_messages_out(messages_out_);
        const auto ev = events();
        st->set_events_queued(ev.queued);
        st->set_events_in_flight(ev.in_flight);
        st->set_events_redelivered(ev.redelivered);
        st->set_events_dropped(ev.dropped);
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
