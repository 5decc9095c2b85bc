#include "worker/sdk/event_runner.hpp"

#include <spdlog/spdlog.h>

#include "common/link/link_entries.hpp"

namespace gwx::sdk {
namespace {

constexpr std::size_t k_max_rejected = 4096;

client_info info_of(link::v2::ClientInfo& c) {
  client_info info;
  info.client_id = std::move(*c.mutable_client_id());
  info.remote_address = std::move(*c.mutable_remote_address());
  info.remote_port = static_cast<std::uint16_t>(c.remote_port());
  info.gateway_address = std::move(*c.mutable_gateway_address());
  info.listener = std::move(*c.mutable_listener());
  info.uid = std::move(*c.mutable_uid());
  return info;
}

tls_info tls_of(link::v2::TlsInfo& t) {
  tls_info info;
  info.version = t.version();
  info.cipher = t.cipher();
  info.server_name = std::move(*t.mutable_server_name());
  if (t.has_client_certificate()) {
    auto& c = *t.mutable_client_certificate();
    client_certificate cert;
    cert.subject = std::move(*c.mutable_subject());
    cert.sans.assign(c.sans().begin(), c.sans().end());
    info.certificate = std::move(cert);
  }
  return info;
}

websocket_request request_of(link::v2::WebSocketRequest& w, const context& ctx) {
  websocket_request r;
  r.method = std::move(*w.mutable_method());
  r.path = std::move(*w.mutable_path());
  r.query = std::move(*w.mutable_query());
  r.headers.insert(w.headers().begin(), w.headers().end());
  if (const auto it = r.headers.find("cookie"); it != r.headers.end()) {
    r.cookies = parse_cookie_header(it->second);
  }
  r.remote_address = ctx.remote_address();
  r.remote_port = ctx.remote_port();
  return r;
}

}  // namespace

event_runner::event_runner(handler& app, gateway_api& api, cluster::transport& transport,
                           std::atomic<std::uint64_t>& writer_seq)
    : app_(app), api_(api), transport_(transport), writer_seq_(writer_seq) {}

void event_runner::run(const cluster::link_ref& link, link::v2::ClientEvent& event,
                       event_sink& sink) {
  auto& c = *event.mutable_client();
  const std::string client_id = c.client_id();
  session_map before =
      sessions_.resolve(client_id, c.session_seq(), link_entries::to_map<session_map>(c.session()));
  // info_of() moves the client's strings out of the event; `client_id` is a copy.
  context ctx(
      api_, info_of(c), before, event.redelivered(),
      event.has_tls() ? std::optional<tls_info>(tls_of(*event.mutable_tls())) : std::nullopt);
  bool handled = true;
  try {
    switch (event.kind()) {
      case link::v2::EVENT_KIND_CONNECT:
        handled = on_connect(link, event, ctx, sink);
        break;
      case link::v2::EVENT_KIND_MESSAGE: {
        const message msg(std::move(*event.mutable_payload()), event.binary());
        app_.on_message(ctx, msg);
        break;
      }
      case link::v2::EVENT_KIND_CLOSE:
        handled = false;
        sessions_.forget(client_id);
        if (rejected_.erase(client_id) == 0) {
          app_.on_close(ctx);
        }
        break;
      default:
        handled = false;
        spdlog::debug("event {} of unknown kind {} ignored", event.event_id(),
                      static_cast<int>(event.kind()));
        break;
    }
  } catch (const std::exception& e) {
    handled = false;
    spdlog::error("handler failed on event {} of client {}: {}", event.event_id(), client_id,
                  e.what());
  }
  if (handled) {
    if (auto write = session_diff(client_id, before, ctx.session())) {
      const auto seq = writer_seq_.fetch_add(1, std::memory_order_relaxed) + 1;
      write->set_writer_seq(seq);
      link::v2::Command cmd;
      *cmd.mutable_session_write() = std::move(*write);
      transport_.send_to_holder(client_id, std::move(cmd));
      sessions_.wrote(client_id, seq, std::move(ctx.session()));
    }
  }
  sink.ack(link, event.event_id());
}

bool event_runner::on_connect(const cluster::link_ref& link, link::v2::ClientEvent& event,
                              context& ctx, event_sink& sink) {
  if (event.has_websocket()) {
    const auto request = request_of(*event.mutable_websocket(), ctx);
    connect_decision decision;
    try {
      decision = app_.on_websocket_connect(ctx, request);
    } catch (const std::exception& e) {
      spdlog::error("on_websocket_connect failed for client {}: {}", ctx.client_id(), e.what());
      decision = connect_decision::reject(500, "internal error");
    }
    if (event.decision_required()) {
      link::v2::ConnectDecision d;
      d.set_event_id(event.event_id());
      d.set_client_id(ctx.client_id());
      d.set_http_status(decision.accepted() ? 101 : decision.http_status);
      d.set_body(decision.body);
      sink.decide(link, std::move(d));
    }
    if (!decision.accepted()) {
      if (!event.decision_required()) {
        // Too late to answer the upgrade: the listener did not ask. Close the client instead.
        ctx.close_current_client();
      }
      remember_rejected(ctx.client_id());
      return false;
    }
  }
  app_.on_connect(ctx);
  return true;
}

void event_runner::remember_rejected(const std::string& client_id) {
  if (!rejected_.insert(client_id).second) {
    return;
  }
  rejected_order_.push_back(client_id);
  while (rejected_order_.size() > k_max_rejected) {
    rejected_.erase(rejected_order_.front());
    rejected_order_.pop_front();
  }
}

}  // namespace gwx::sdk
