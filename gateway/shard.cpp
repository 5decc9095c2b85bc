#include "gateway/shard.hpp"

#include <spdlog/spdlog.h>

#include "common/client_id.hpp"
#include "gateway/client_event.hpp"
#include "gateway/client_session.hpp"
#include "gateway/gateway_server.hpp"
#include "gateway/worker_link.hpp"

namespace gwx::gateway {
namespace {

constexpr auto k_sweep_interval = std::chrono::milliseconds(250);

delivery_config delivery_of(const gateway_config& cfg) {
  delivery_config out;
  out.at_most_once = cfg.at_most_once;
  out.queue_max_events = cfg.queue_max_events;
  out.queue_max_bytes = cfg.queue_max_bytes;
  out.queue_max_age = cfg.queue_max_age;
  out.queue_close_client = cfg.queue_close_client;
  out.inflight_max_events = cfg.inflight_max_events;
  out.inflight_max_bytes = cfg.inflight_max_bytes;
  out.max_attempts = cfg.event_max_attempts;
  return out;
}

/// A worker link as seen from one shard: events go straight to the link on its own loop and
/// are posted to it from any other.
class linked_worker final : public worker_port {
 public:
  linked_worker(const worker_ref& ref, unsigned shard_loop, loop_mailbox& to_link)
      : id_(ref.id),
        draining_(ref.draining),
        link_(ref.link),
        local_(ref.link->loop() == shard_loop),
        to_link_(to_link) {}

  std::uint64_t id() const override { return id_; }
  bool draining() const override { return draining_; }
  bool backpressured() const override { return link_->backpressured(); }
  void send_event(const event_ptr& event) override {
    if (local_) {
      link_->send_event(event);
    } else {
      // Batched: one wake-up of the link's loop carries every event queued meanwhile.
      to_link_.push([link = link_, event] { link->send_event(event); });
    }
  }
  void send_client_info(const event_ptr& info) override {
    if (local_) {
      link_->send_client_info(info);
    } else {
      to_link_.push([link = link_, info] { link->send_client_info(info); });
    }
  }

 private:
  std::uint64_t id_;
  bool draining_;
  std::shared_ptr<worker_link> link_;
  bool local_;
  loop_mailbox& to_link_;
};

/// Every record of this shard is a client_session's (accept() makes them).
client_session& session_of(const client_record& c) {
  return static_cast<client_session&>(c.port());
}

}  // namespace

shard::shard(gateway_server& server, unsigned index, asio::io_context& io)
    : server_(server),
      index_(index),
      io_(io),
      loop_(io, *this, server.config().io_uring),
      clients_(server.epoch(), index),
      router_(clients_, index, delivery_of(server.config()), server.events(), server.advertised()),
      executor_(
          clients_,
          [this](link::v2::GatewayStats& st) {
            st.set_messages_in(messages_in_);
            const auto ev = router_.counts();
            st.set_events_queued(ev.queued);
            st.set_events_in_flight(ev.in_flight);
            st.set_events_redelivered(ev.redelivered);
            st.set_events_dropped(ev.dropped);
            for (const auto& [id, load] : ev.by_worker) {
              auto* w = st.add_worker_links();
              w->set_link_id(id);
              w->set_clients(load.clients);
              w->set_events_in_flight(load.in_flight);
            }
          },
          server.events()),
      sweep_timer_(io) {
  loop_.set_unfinished_budget(server.config().unfinished_max_bytes /
                              std::max<std::size_t>(server.config().threads, 1));
  if (server.bus() != nullptr && server.bus()->routed()) {
    clients_.set_membership_listener(this);
  }
}

namespace {

std::string routing_key(membership_listener::key_kind kind, const std::string& name) {
  return (kind == membership_listener::key_kind::uid ? "uid." : "group.") + name;
}

}  // namespace

void shard::on_first_holder(key_kind kind, const std::string& name) {
  server_.bus()->hold(routing_key(kind, name));
}

void shard::on_last_holder(key_kind kind, const std::string& name) {
  server_.bus()->release(routing_key(kind, name));
}

void shard::accept(const listener_config& listener, client_socket socket, handshake_slot place,
                   const asio::ip::tcp::endpoint& remote) {
  const std::uint64_t connection = (next_connection_++ << 8) | index_;
  auto id = make_client_id(server_.advertised_ip(), server_.advertised_port(), server_.epoch(),
                           connection);
  std::string remote_ip = remote.address().to_string();
  const std::uint16_t remote_port = remote.port();
  std::shared_ptr<client_session> session =
      listener.tls_state ? std::make_shared<tls_client_session>(loop_, listener, std::move(socket))
                         : std::make_shared<client_session>(loop_, listener, std::move(socket));
  auto& record =
      clients_.add(connection, std::move(id), listener, std::move(remote_ip), remote_port, session);
  session->start(record, std::move(place));
}

void shard::on_connected(client_record& c, const codec::ws::http_request* request,
                         bool decision_required) {
  clients_.announce(c);
  const auto now = std::chrono::steady_clock::now();
  const auto* tls = session_of(c).tls();
  auto event = make_connect_event(c, router_.next_event_id(c), request, decision_required,
                                  tls != nullptr ? tls->native() : nullptr);
  // Nobody can decide: answer now rather than keep the client hanging in its handshake.
  if (decision_required && !router_.has_route(c, now)) {
    session_of(c).on_connect_decision(503, "no worker available");
    return;
  }
  router_.dispatch(c, std::move(event), now);
}

void shard::on_message(client_record& c, std::string_view payload, bool binary) {
  ++messages_in_;
  c.listener().metrics.messages_in.inc();
  c.listener().metrics.bytes_in.inc(payload.size());
  router_.dispatch(c, make_message_event(c, router_.next_event_id(c), payload, binary),
                   std::chrono::steady_clock::now());
}

void shard::on_closed(client_record& c, close_cause cause, const std::string& reason) {
  spdlog::debug("client {} closed: {}", c.id(), reason);
  server_.client_closed(c.listener());
  c.listener().metrics.count_close(cause);
  if (c.announced()) {
    auto event = make_close_event(c, router_.next_event_id(c), server_.advertised(), reason);
    clients_.forget_membership(c);
    router_.dispatch(c, std::move(event), std::chrono::steady_clock::now());
  }
  router_.forget_if_done(c);
}

void shard::set_workers(std::uint64_t version, const std::vector<worker_ref>& workers) {
  std::vector<std::shared_ptr<worker_port>> ports;
  ports.reserve(workers.size());
  for (const auto& w : workers) {
    ports.push_back(
        std::make_shared<linked_worker>(w, index_, server_.mailbox(index_, w.link->loop())));
  }
  router_.set_workers(version, std::move(ports), std::chrono::steady_clock::now());
}

void shard::on_acks(const std::vector<std::uint64_t>& event_ids) {
  router_.on_acks(event_ids, std::chrono::steady_clock::now());
}

void shard::decide(const std::string& client_id, std::uint32_t http_status,
                   const std::string& body) {
  // The client may be mid-handshake (not addressable yet): look it up as pending.
  if (auto* c = clients_.find_pending(client_id)) {
    session_of(*c).on_connect_decision(http_status, body);
  }
}

void shard::start() {
  sweep();
}

void shard::shutdown(const std::string& goodbye) {
  std::vector<std::shared_ptr<client_session>> all;
  all.reserve(clients_.size());
  clients_.for_each([&all](client_record& c) { all.push_back(session_of(c).shared_from_this()); });
  for (auto& s : all) {
    s->go_away(goodbye);
  }
}

shard::drain_state shard::remaining() const {
  drain_state out;
  clients_.for_each([&out](const client_record& c) { out.open_sockets += c.closed() ? 0 : 1; });
  out.pending_events = router_.pending();
  return out;
}

void shard::sweep() {
  router_.sweep(std::chrono::steady_clock::now());
  sweep_timer_.expires_after(k_sweep_interval);
  sweep_timer_.async_wait([this](std::error_code ec) {
    if (!ec) {
      sweep();
    }
  });
}

}  // namespace gwx::gateway
