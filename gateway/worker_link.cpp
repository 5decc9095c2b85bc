#include "gateway/worker_link.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>

#include "common/client_id.hpp"
#include "common/link/link_codec.hpp"
#include "common/link/link_entries.hpp"
#include "gateway/gateway_server.hpp"

namespace gwx::gateway {

/// One command's replies from several shards, merged on the link's loop.
struct routed_command {
  link::v2::Command cmd;
  std::string message;
};

struct gather_state {
  std::shared_ptr<const routed_command> command;
  link::v2::Reply reply;
  std::size_t pending = 0;
  std::size_t total = 0;
  std::size_t offline = 0;
};

namespace {

constexpr auto k_hello_timeout = std::chrono::seconds(5);
// How often a backpressured link's send queue is rechecked (its clients wait meanwhile).
constexpr auto k_congestion_recheck = std::chrono::milliseconds(20);

void sort_unique(google::protobuf::RepeatedPtrField<std::string>& list) {
  std::sort(list.begin(), list.end());
  list.erase(std::unique(list.begin(), list.end()), list.end());
}

void merge_into(link::v2::QueryResult& into, const link::v2::QueryResult& part) {
  into.set_count(into.count() + part.count());
  // Each part lists a key once (client_directory::query); parts add up per key.
  if (part.counts_size() > 0) {
    auto counts = link_entries::to_map<std::map<std::string, std::uint64_t>>(into.counts());
    for (const auto& e : part.counts()) {
      counts[e.key()] += e.value();
    }
    into.clear_counts();
    link_entries::append(*into.mutable_counts(), counts);
  }
  into.mutable_client_ids()->MergeFrom(part.client_ids());
  into.mutable_uids()->MergeFrom(part.uids());
  into.mutable_groups()->MergeFrom(part.groups());
  for (const auto& [k, v] : part.sessions()) {
    (*into.mutable_sessions())[k] = v;
  }
  for (const auto& e : part.clients_by_uid()) {
    link_entries::find_or_add(*into.mutable_clients_by_uid(), e.key())
        ->mutable_value()
        ->mutable_values()
        ->MergeFrom(e.value().values());
  }
  if (part.has_stats()) {
    auto* s = into.mutable_stats();
    const auto& p = part.stats();
    s->set_clients(s->clients() + p.clients());
    s->set_messages_in(s->messages_in() + p.messages_in());
    s->set_messages_out(s->messages_out() + p.messages_out());
    s->set_events_queued(s->events_queued() + p.events_queued());
    s->set_events_in_flight(s->events_in_flight() + p.events_in_flight());
    s->set_events_redelivered(s->events_redelivered() + p.events_redelivered());
    s->set_events_dropped(s->events_dropped() + p.events_dropped());
    for (const auto& pw : p.worker_links()) {
      auto* into_w = static_cast<link::v2::WorkerLinkStats*>(nullptr);
      for (auto& w : *s->mutable_worker_links()) {
        if (w.link_id() == pw.link_id()) {
          into_w = &w;
        }
      }
      if (into_w == nullptr) {
        *s->add_worker_links() = pw;
      } else {
        into_w->set_clients(into_w->clients() + pw.clients());
        into_w->set_events_in_flight(into_w->events_in_flight() + pw.events_in_flight());
      }
    }
  }
}

}  // namespace

worker_link::worker_link(gateway_server& server, unsigned loop, std::uint64_t id,
                         asio::ip::tcp::socket socket)
    : server_(server),
      loop_(loop),
      id_(id),
      stream_(std::make_shared<link_stream>(std::move(socket), server.config().max_link_frame,
                                            link_stream::k_default_send_cap,
                                            server.new_link_ssl())),
      hello_timer_(stream_->get_executor()),
      congestion_timer_(stream_->get_executor()) {}

void worker_link::start() {
  handshake_.emplace(server_.config().secret, server_.gateway_id(), server_.advertised(),
                     !server_.config().at_most_once);
  auto self = shared_from_this();
  stream_->start(
      [self](link::v2::Frame& f, std::string_view payload) { self->on_frame(f, payload); },
      [self](const std::string& reason) { self->on_closed(reason); });
  stream_->send(handshake_->challenge());
  stream_->enable_keepalive(server_.config().link_keepalive_interval,
                            server_.config().link_keepalive_timeout);
  hello_timer_.expires_after(k_hello_timeout);
  hello_timer_.async_wait([self](std::error_code ec) {
    if (!ec && !self->authenticated_) {
      self->refusal_logged_ = true;
      self->server_.link_refused(self->stream_->remote_address(), "", "no hello within 5 s");
      self->stream_->close("no hello");
    }
  });
}

void worker_link::detach_stream() {
  stream_->drop_handlers();
}

void worker_link::send(const link::v2::Frame& frame) {
  stream_->send(frame);
}

void worker_link::send_event(const event_ptr& frame) {
  if (!stream_->is_open()) {
    // Kept by its shard until acknowledged: it goes to another worker when this link's
    // departure reaches the shards.
    return;
  }
  ++events_sent_;
  routed_.inc();
  send_wire(frame->wire);
}

void worker_link::send_client_info(const event_ptr& frame) {
  if (stream_->is_open()) {
    send_wire(frame->wire);
  }
}

void worker_link::send_wire(const std::string& wire) {
  if (stream_->send_encoded(wire) == net::send_status::backpressured) {
    congested_.store(true, std::memory_order_relaxed);
    watch_congestion();
  }
}

void worker_link::watch_congestion() {
  if (watching_congestion_) {
    return;
  }
  watching_congestion_ = true;
  congestion_timer_.expires_after(k_congestion_recheck);
  congestion_timer_.async_wait([self = shared_from_this()](std::error_code ec) {
    self->watching_congestion_ = false;
    const bool congested = !ec && self->stream_->is_open() && self->stream_->backpressured();
    self->congested_.store(congested, std::memory_order_relaxed);
    if (congested) {
      self->watch_congestion();
    }
  });
}

void worker_link::request_drain(const std::string& reason) {
  link::v2::Frame f;
  f.mutable_drain()->set_reason(reason);
  stream_->send(f);
}

void worker_link::on_acks(const link::v2::EventAck& ack) {
  events_acked_ += static_cast<std::uint64_t>(ack.event_ids_size());
  if (server_.config().at_most_once) {
    return;
  }
  // Kept from one ack to the next (this loop's list keeps its room; another loop's is handed
  // over with its ids).
  auto& by_shard = acks_by_shard_;
  by_shard.resize(server_.shard_count());
  for (auto& ids : by_shard) {
    ids.clear();
  }
  for (const auto id : ack.event_ids()) {
    const auto s = shard::shard_of_event(id);
    if (s < by_shard.size()) {
      by_shard[s].push_back(id);
    }
  }
  for (unsigned s = 0; s < by_shard.size(); ++s) {
    if (by_shard[s].empty()) {
      continue;
    }
    auto& target = server_.shard_at(s);
    if (s == loop_) {
      target.on_acks(by_shard[s]);
    } else {
      server_.mailbox(loop_, s).push(
          [&target, ids = std::move(by_shard[s])] { target.on_acks(ids); });
    }
  }
}

void worker_link::on_drain() {
  if (draining_ || role_ != link::v2::PEER_ROLE_WORKER) {
    return;
  }
  draining_ = true;
  spdlog::info("worker '{}' is draining: no new clients go to it", name_);
  auto self = shared_from_this();
  server_.worker_draining(self, [self] {
    link::v2::Frame f;
    f.mutable_drain_ack();
    self->stream_->send(f);
  });
}

void worker_link::on_frame(link::v2::Frame& frame, std::string_view payload) {
  if (!authenticated_) {
    on_handshake(frame);
    return;
  }
  switch (frame.body_case()) {
    case link::v2::Frame::kCommand:
      on_command(*frame.mutable_command(), payload);
      break;
    case link::v2::Frame::kAck:
      on_acks(frame.ack());
      break;
    case link::v2::Frame::kDrain:
      on_drain();
      break;
    case link::v2::Frame::kDecision:
      on_decision(frame.decision());
      break;
    default:
      spdlog::debug("link {}: ignoring unexpected frame {}", name_,
                    static_cast<int>(frame.body_case()));
      break;
  }
}

std::string worker_link::remote_address() const {
  return stream_->remote_address();
}

void worker_link::on_handshake(const link::v2::Frame& frame) {
  auto step = handshake_->on_frame(frame);
  if (step.reply && step.result != link_handshake::step::outcome::up) {
    stream_->send(*step.reply);
  }
  if (step.result == link_handshake::step::outcome::failed) {
    refusal_logged_ = true;
    server_.link_refused(stream_->remote_address(),
                         frame.has_hello() ? frame.hello().name().substr(0, 64) : std::string(),
                         step.reason);
    stream_->close("refused");
    return;
  }
  if (step.result == link_handshake::step::outcome::pending) {
    return;
  }
  authenticated_ = true;
  hello_timer_.cancel();
  stream_->authenticated();
  role_ = handshake_->role();
  name_ = handshake_->name();
  handshake_.reset();
  if (name_.empty()) {
    name_ = stream_->remote_address();
  }
  const bool worker = role_ == link::v2::PEER_ROLE_WORKER;
  if (worker) {
    routed_ = server_.routed_counter(name_);
    // Shards learn of the worker before the worker learns it is linked (the Welcome went into
    // the queue above and leaves after this returns), so any client that connects after the
    // worker saw Welcome is routed to it.
    server_.worker_up(shared_from_this());
  }
  stream_->send(*step.reply);
  server_.link_handshake_over();
  spdlog::info("{} '{}' linked from {}", worker ? "worker" : "push client", name_,
               stream_->remote_address());
}

void worker_link::on_closed(const std::string& reason) {
  server_.link_closed(id_);
  hello_timer_.cancel();
  congestion_timer_.cancel();
  if (!authenticated_) {
    if (!refusal_logged_) {
      // A TLS handshake that failed, a plain peer on a TLS listener (or the reverse), another
      // protocol: the peer never got as far as its hello.
      server_.link_refused(stream_->remote_address(), "", reason);
    }
    server_.link_handshake_over();
    return;
  }
  const bool worker = role_ == link::v2::PEER_ROLE_WORKER;
  spdlog::info("{} '{}' unlinked: {} ({} events sent, {} acknowledged)",
               worker ? "worker" : "push client", name_, reason, events_sent_, events_acked_);
  if (worker) {
    server_.worker_down(id_);
  }
}

void worker_link::on_decision(const link::v2::ConnectDecision& d) {
  const auto shard_index = server_.shard_of(d.client_id());
  if (!shard_index) {
    return;
  }
  auto& target = server_.shard_at(*shard_index);
  server_.mailbox(loop_, *shard_index)
      .push([&target, id = d.client_id(), status = d.http_status(), body = d.body()] {
        target.decide(id, status, body);
      });
}

void worker_link::on_command(link::v2::Command& cmd, std::string_view message) {
  if (cmd.has_drain_worker()) {
    const bool found = server_.request_drain(cmd.drain_worker().worker_name());
    if (cmd.request_id() != 0) {
      link::v2::Frame f;
      f.mutable_reply()->set_request_id(cmd.request_id());
      if (!found) {
        f.mutable_reply()->set_error("no worker named '" + cmd.drain_worker().worker_name() +
                                     "' is linked to this gateway");
      }
      stream_->send(f);
    }
    return;
  }
  std::optional<unsigned> only;
  if (const auto* target = command_target(cmd)) {
    only = server_.shard_of(*target);
    if (!only) {
      if (cmd.request_id() != 0) {
        link::v2::Frame f;
        f.mutable_reply()->set_request_id(cmd.request_id());
        f.mutable_reply()->set_error("offline");
        stream_->send(f);
      }
      return;
    }
  } else if (server_.shard_count() == 1) {
    only = 0;
  }
  if (only && *only == loop_ && cmd.request_id() == 0) {
    // The hot path (a push to one client of this loop): run it here, the message read straight
    // from the link's buffer.
    link::v2::Reply ignored;
    server_.shard_at(loop_).execute(cmd, message, ignored);
    return;
  }
  // Other loops run it later: the command and its message travel together, owned.
  auto command = std::make_shared<routed_command>();
  command->cmd = std::move(cmd);
  command->message.assign(message.data(), message.size());
  std::vector<unsigned> shards;
  if (only) {
    shards.push_back(*only);
  } else {
    for (unsigned i = 0; i < server_.shard_count(); ++i) {
      shards.push_back(i);
    }
  }
  std::shared_ptr<gather_state> state;
  if (command->cmd.request_id() != 0) {
    state = std::make_shared<gather_state>();
    state->command = command;
    state->pending = state->total = shards.size();
    state->reply.set_request_id(command->cmd.request_id());
  }
  auto self = shared_from_this();
  for (const unsigned s : shards) {
    auto run = [self, command, state, s] {
      auto& target = self->server_.shard_at(s);
      if (!state) {
        link::v2::Reply ignored;
        target.execute(command->cmd, command->message, ignored);
        return;
      }
      auto part = std::make_shared<link::v2::Reply>();
      target.execute(command->cmd, command->message, *part);
      auto merge = [self, state, part] { self->merge(*state, *part); };
      if (s == self->loop_) {
        merge();
      } else {
        self->server_.mailbox(s, self->loop_).push(std::move(merge));
      }
    };
    if (s == loop_) {
      run();
    } else {
      server_.mailbox(loop_, s).push(std::move(run));
    }
  }
}

void worker_link::merge(gather_state& state, const link::v2::Reply& part) {
  if (part.error() == "offline") {
    ++state.offline;
  } else if (!part.error().empty()) {
    state.reply.set_error(part.error());
  }
  merge_into(*state.reply.mutable_result(), part.result());
  if (--state.pending > 0) {
    return;
  }
  if (state.offline == state.total && state.reply.error().empty()) {
    state.reply.set_error("offline");
  }
  auto& result = *state.reply.mutable_result();
  sort_unique(*result.mutable_uids());
  sort_unique(*result.mutable_groups());
  if (state.command->cmd.has_query() &&
      state.command->cmd.query().kind() == link::v2::QUERY_KIND_STATS) {
    auto* stats = result.mutable_stats();
    stats->set_gateway_id(server_.gateway_id());
    stats->set_internal_address(server_.advertised());
    stats->set_groups(static_cast<std::uint64_t>(result.groups_size()));
    stats->set_uids(static_cast<std::uint64_t>(result.uids_size()));
    stats->set_threads(static_cast<std::uint32_t>(server_.shard_count()));
    for (auto& w : server_.worker_names()) {
      stats->add_workers(std::move(w));
    }
    for (auto& url : server_.bound_urls()) {
      stats->add_listeners(std::move(url));
    }
    for (auto& w : server_.draining_names()) {
      stats->add_draining_workers(std::move(w));
    }
    // Name, address and state of every linked worker; the loops' parts carry its clients. A
    // part for a link that is gone (its clients not moved on yet) is dropped.
    google::protobuf::RepeatedPtrField<link::v2::WorkerLinkStats> links;
    for (const auto& ref : server_.worker_refs()) {
      auto* w = links.Add();
      w->set_link_id(ref.id);
      w->set_name(ref.link->name());
      w->set_address(ref.link->remote_address());
      w->set_draining(ref.draining);
      for (const auto& part : stats->worker_links()) {
        if (part.link_id() == ref.id) {
          w->set_clients(part.clients());
          w->set_events_in_flight(part.events_in_flight());
        }
      }
    }
    stats->mutable_worker_links()->Swap(&links);
    server_.fill_bus_stats(*stats);
    result.clear_groups();
    result.clear_uids();
  }
  link::v2::Frame f;
  *f.mutable_reply() = std::move(state.reply);
  // An answer over a frame would break the link when the worker reads it, and the asking
  // event's redelivery would ask again: it is refused with its size instead.
  const auto size = link_codec::encoded_size(f, 0);
  const auto limit = server_.config().max_link_frame;
  if (size > limit) {
    const auto request_id = f.reply().request_id();
    f.mutable_reply()->Clear();
    f.mutable_reply()->set_request_id(request_id);
    f.mutable_reply()->set_error("answer too large: " + std::to_string(size) +
                                 " bytes, over the link's frame limit of " + std::to_string(limit) +
                                 " bytes; ask for less");
    if (answers_too_large_.count()) {
      spdlog::warn("worker '{}': {} ({} such answers refused on this link)", name_,
                   f.reply().error(), answers_too_large_.total());
    }
  }
  stream_->send(f);
}

}  // namespace gwx::gateway
