#include "worker/sdk/event_runner.hpp"

#include <spdlog/spdlog.h>

#include "common/link/link_entries.hpp"
#include "common/logging.hpp"

namespace gwx::sdk {
namespace {

constexpr std::size_t k_max_rejected = 4096;

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

void client_event::assign(const cluster::link_ref& from, link::v2::ClientEvent& event,
                          std::string_view message_bytes, const link_clients::client_view* info) {
  // A link's serial is new every time it comes up (one counter for the process): equal
  // non-zero serials are the same link, and its gateway id needs no comparing per event.
  if (link.serial != from.serial || (from.serial == 0 && link.gateway_id != from.gateway_id)) {
    link = from;
  }
  event_id = event.event_id();
  kind = event.kind();
  redelivered = event.redelivered();
  binary = event.binary();
  payload.assign(message_bytes);
  session.clear();
  if (info != nullptr) {
    client.client_id.assign(info->client_id);
    client.remote_address.assign(info->remote_address);
    client.remote_port = static_cast<std::uint16_t>(info->remote_port);
    client.gateway_address.assign(info->gateway_address);
    client.listener.assign(info->listener);
    client.uid.assign(info->uid);
    if (info->session != nullptr) {
      for (const auto& e : *info->session) {
        session.insert_or_assign(e.key(), e.value());
      }
    }
    session_seq = info->session_seq;
  } else {
    client.client_id.assign(event.client_id());
    client.remote_address.clear();
    client.remote_port = 0;
    client.gateway_address.clear();
    client.listener.clear();
    client.uid.clear();
    session_seq = 0;
  }
  if (kind == link::v2::EVENT_KIND_CONNECT) {
    // After the info: views into the event's own info stay valid across the swap anyway.
    connect = std::make_unique<link::v2::ClientEvent>();
    connect->Swap(&event);
  } else {
    connect.reset();
  }
}

event_runner::event_runner(handler& app, gateway_api& api, cluster::transport& transport,
                           std::atomic<std::uint64_t>& writer_seq)
    : app_(app),
      api_(api),
      transport_(transport),
      writer_seq_(writer_seq),
      ctx_(api, client_info{}, session_map{}) {}

template <typename Describe>
void event_runner::log_failure(const Describe& describe) {
  // A client can make its handler throw at will: one line per interval, with the count
  // (gwx_worker_handler_failures_total counts every one), and nothing built for the others.
  if (failure_log_.count()) {
    const auto more = failure_log_.take_pending() - 1;
    spdlog::error("{}{}", describe(),
                  more == 0 ? std::string()
                            : " (" + std::to_string(more) + " more handler failures before it)");
  }
}

namespace {

/// Why a handler failed, for the log: what it threw may carry a client's bytes (escaped, cut).
std::string failure_of(const std::exception* e) {
  return e != nullptr ? printable(e->what()) : "an exception that is not a std::exception";
}

std::string handler_failed(std::uint64_t event_id, const std::string& client_id,
                           const std::exception* e) {
  return "handler failed on event " + std::to_string(event_id) + " of client " + client_id + ": " +
         failure_of(e);
}

}  // namespace

void event_runner::run(const cluster::link_ref& link, link::v2::ClientEvent& event,
                       event_sink& sink) {
  client_event ev;
  const std::string payload = std::move(*event.mutable_payload());
  if (event.has_client()) {
    auto info = link_clients::view_of(event.client());
    if (info.client_id.empty()) {
      info.client_id = event.client_id();
    }
    ev.assign(link, event, payload, &info);
  } else {
    ev.assign(link, event, payload, nullptr);
  }
  run(ev, sink);
}

void event_runner::run(client_event& event, event_sink& sink) {
  auto& ctx = ctx_;
  // The handler sees the slot's info; the context lets go of it when the event is done.
  ctx.info_ = &event.client;
  const std::string& client_id = event.client.client_id;
  session_map before =
      sessions_.resolve(client_id, event.link.serial, event.session_seq, std::move(event.session));
  ctx.session_ = before;
  ctx.redelivered_ = event.redelivered;
  ctx.tls_.reset();
  if (event.connect && event.connect->has_tls()) {
    ctx.tls_ = tls_of(*event.connect->mutable_tls());
  }
  bool handled = true;
  try {
    switch (event.kind) {
      case link::v2::EVENT_KIND_CONNECT:
        handled = on_connect(event, sink);
        break;
      case link::v2::EVENT_KIND_MESSAGE: {
        message msg(std::move(event.payload), event.binary);
        app_.on_message(ctx, msg);
        event.payload = std::move(msg.data);  // its capacity serves the slot's next event
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
        spdlog::debug("event {} of unknown kind {} ignored", event.event_id,
                      static_cast<int>(event.kind));
        break;
    }
  } catch (const std::exception& e) {
    handled = false;
    log_failure([&] { return handler_failed(event.event_id, client_id, &e); });
  } catch (...) {
    // Not a std::exception (a thrown int, say): the event is failed the same way, never the
    // worker terminated.
    handled = false;
    log_failure([&] { return handler_failed(event.event_id, client_id, nullptr); });
  }
  if (handled) {
    if (auto write = session_diff(client_id, before, ctx.session_)) {
      const auto seq = writer_seq_.fetch_add(1, std::memory_order_relaxed) + 1;
      write->set_writer_seq(seq);
      link::v2::Command cmd;
      *cmd.mutable_session_write() = std::move(*write);
      transport_.send_to_holder(client_id, std::move(cmd));
      sessions_.wrote(client_id, event.link.serial, seq, std::move(ctx.session_));
    }
  }
  sink.ack(event.link, event.event_id);
  ctx.info_ = &ctx.own_info_;
}

bool event_runner::on_connect(client_event& event, event_sink& sink) {
  auto& ctx = ctx_;
  link::v2::ClientEvent none;
  auto& ev = event.connect ? *event.connect : none;
  if (ev.has_websocket()) {
    const auto request = request_of(*ev.mutable_websocket(), ctx);
    connect_decision decision;
    try {
      decision = app_.on_websocket_connect(ctx, request);
    } catch (const std::exception& e) {
      log_failure([&] {
        return "on_websocket_connect failed for client " + ctx.client_id() + ": " + failure_of(&e);
      });
      decision = connect_decision::reject(500, "internal error");
    } catch (...) {
      log_failure([&] {
        return "on_websocket_connect failed for client " + ctx.client_id() + ": " +
               failure_of(nullptr);
      });
      decision = connect_decision::reject(500, "internal error");
    }
    if (ev.decision_required()) {
      link::v2::ConnectDecision d;
      d.set_event_id(event.event_id);
      d.set_client_id(ctx.client_id());
      d.set_http_status(decision.accepted() ? 101 : decision.http_status);
      d.set_body(decision.body);
      sink.decide(event.link, std::move(d));
    }
    if (!decision.accepted()) {
      if (!ev.decision_required()) {
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
