#include "gateway/client_event.hpp"

#include "common/codec/ws_handshake.hpp"
#include "gateway/client_directory.hpp"

namespace gwx::gateway {
namespace {

std::shared_ptr<link::v1::Frame> make_event(const client_record& c, std::uint64_t event_id,
                                            const std::string& gateway_address,
                                            link::v1::EventKind kind) {
  auto frame = std::make_shared<link::v1::Frame>();
  auto* ev = frame->mutable_event();
  ev->set_event_id(event_id);
  ev->set_kind(kind);
  auto& info = *ev->mutable_client();
  info.set_client_id(c.id());
  info.set_remote_address(c.remote_ip());
  info.set_remote_port(c.remote_port());
  info.set_gateway_address(gateway_address);
  info.set_listener(c.listener().bound_url);
  info.set_uid(c.uid());
  info.mutable_session()->insert(c.session().begin(), c.session().end());
  info.set_session_seq(c.session_seq());
  return frame;
}

}  // namespace

event_ptr make_connect_event(const client_record& c, std::uint64_t event_id,
                             const std::string& gateway_address,
                             const codec::ws::http_request* request, bool decision_required) {
  auto frame = make_event(c, event_id, gateway_address, link::v1::EVENT_KIND_CONNECT);
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
  return frame;
}

event_ptr make_message_event(const client_record& c, std::uint64_t event_id,
                             const std::string& gateway_address, std::string_view payload,
                             bool binary) {
  auto frame = make_event(c, event_id, gateway_address, link::v1::EVENT_KIND_MESSAGE);
  frame->mutable_event()->set_payload(payload.data(), payload.size());
  frame->mutable_event()->set_binary(binary);
  return frame;
}

event_ptr make_close_event(const client_record& c, std::uint64_t event_id,
                           const std::string& gateway_address, const std::string& reason) {
  auto frame = make_event(c, event_id, gateway_address, link::v1::EVENT_KIND_CLOSE);
  frame->mutable_event()->set_close_reason(reason);
  return frame;
}

std::uint64_t event_id_of(const event_ptr& event) {
  return event->event().event_id();
}

bool is_redelivered(const event_ptr& event) {
  return event->event().redelivered();
}

std::size_t event_size(const event_ptr& event) {
  return event->ByteSizeLong();
}

event_ptr redelivered_copy(const event_ptr& event) {
  auto copy = std::make_shared<link::v1::Frame>(*event);
  copy->mutable_event()->set_redelivered(true);
  return copy;
}

}  // namespace gwx::gateway
