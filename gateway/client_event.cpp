#include "gateway/client_event.hpp"

#include "common/codec/ws_handshake.hpp"
#include "common/link/link_codec.hpp"
#include "common/link/link_entries.hpp"
#include "gateway/client_directory.hpp"

namespace gwx::gateway {
namespace {

// One scratch header per loop thread: building an event allocates only its own bytes. Every
// field is overwritten rather than the event Clear()ed, which would free the ClientInfo and its
// strings and allocate them again for the next event.
link::v2::ClientEvent& scratch(const client_record& c, std::uint64_t event_id,
                               const std::string& gateway_address, link::v2::EventKind kind,
                               link::v2::Frame& frame) {
  auto* ev = frame.mutable_event();
  if (ev->has_websocket()) {
    ev->clear_websocket();
  }
  ev->clear_payload();
  ev->set_binary(false);
  ev->set_decision_required(false);
  ev->clear_close_reason();
  ev->set_event_id(event_id);
  ev->set_kind(kind);
  auto& info = *ev->mutable_client();
  info.set_client_id(c.id());
  info.set_remote_address(c.remote_ip());
  info.set_remote_port(c.remote_port());
  info.set_gateway_address(gateway_address);
  info.set_listener(c.listener().bound_url);
  info.set_uid(c.uid());
  // Clear() keeps the entries allocated; append() reuses them.
  info.mutable_session()->Clear();
  if (!c.session().empty()) {
    link_entries::append(*info.mutable_session(), c.session());
  }
  info.set_session_seq(c.session_seq());
  // Written last (highest field number, explicit presence): see redelivered_copy().
  ev->set_redelivered(false);
  return *ev;
}

thread_local link::v2::Frame t_frame;

event_ptr finish(std::uint64_t event_id, std::string_view payload) {
  auto e = std::make_shared<encoded_event>();
  e->id = event_id;
  e->wire.reserve(link_codec::encoded_size(t_frame, payload.size()));
  link_codec::encode(e->wire, t_frame, payload);
  return e;
}

}  // namespace

event_ptr make_connect_event(const client_record& c, std::uint64_t event_id,
                             const std::string& gateway_address,
                             const codec::ws::http_request* request, bool decision_required) {
  auto& ev = scratch(c, event_id, gateway_address, link::v2::EVENT_KIND_CONNECT, t_frame);
  if (request != nullptr) {
    auto* ws = ev.mutable_websocket();
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
  ev.set_decision_required(decision_required);
  return finish(event_id, {});
}

event_ptr make_message_event(const client_record& c, std::uint64_t event_id,
                             const std::string& gateway_address, std::string_view payload,
                             bool binary) {
  auto& ev = scratch(c, event_id, gateway_address, link::v2::EVENT_KIND_MESSAGE, t_frame);
  ev.set_binary(binary);
  return finish(event_id, payload);
}

event_ptr make_close_event(const client_record& c, std::uint64_t event_id,
                           const std::string& gateway_address, const std::string& reason) {
  auto& ev = scratch(c, event_id, gateway_address, link::v2::EVENT_KIND_CLOSE, t_frame);
  ev.set_close_reason(reason);
  return finish(event_id, {});
}

std::uint64_t event_id_of(const event_ptr& event) {
  return event->id;
}

namespace {
// The header's last byte: the value of `redelivered` (see the proto).
std::size_t flag_offset(const std::string& wire) {
  const auto r = link_codec::decode(wire, link_codec::limits{});
  return link_codec::k_prefix_size + r.header.size() - 1;
}
}  // namespace

bool is_redelivered(const event_ptr& event) {
  return event->wire[flag_offset(event->wire)] != 0;
}

std::size_t event_size(const event_ptr& event) {
  return event->wire.size();
}

event_ptr redelivered_copy(const event_ptr& event) {
  auto copy = std::make_shared<encoded_event>(*event);
  copy->wire[flag_offset(copy->wire)] = 1;
  return copy;
}

}  // namespace gwx::gateway
