#include "gateway/client_event.hpp"

#include <cstring>

#include "common/codec/ws_handshake.hpp"
#include "common/link/link_codec.hpp"
#include "common/link/link_entries.hpp"
#include "common/link/protowire.hpp"
#include "common/net/tls_context.hpp"
#include "gateway/client_directory.hpp"
#include "gateway/event_recycler.hpp"

namespace gwx::gateway {
namespace {

void fill_info(link::v2::ClientInfo& info, const client_record& c,
               const std::string& gateway_address) {
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
}

// One scratch header per loop thread: building an event allocates only its own bytes. Every
// field is overwritten rather than the event Clear()ed, which would free its strings and
// allocate them again for the next event.
link::v2::ClientEvent& scratch(const client_record& c, std::uint64_t event_id,
                               link::v2::EventKind kind, link::v2::Frame& frame) {
  auto* ev = frame.mutable_event();
  if (ev->has_websocket()) {
    ev->clear_websocket();
  }
  if (ev->has_tls()) {
    ev->clear_tls();
  }
  if (ev->has_client()) {
    ev->clear_client();
  }
  ev->clear_payload();
  ev->set_binary(false);
  ev->set_decision_required(false);
  ev->clear_close_reason();
  ev->set_event_id(event_id);
  ev->set_kind(kind);
  ev->set_client_id(c.id());
  // Serialized last (highest field number, explicit presence): see redelivered_copy().
  ev->set_redelivered(false);
  return *ev;
}

thread_local link::v2::Frame t_frame;

std::shared_ptr<encoded_event> finish(const link::v2::Frame& frame, std::uint64_t event_id) {
  auto e = std::make_shared<encoded_event>();
  e->id = event_id;
  e->wire.reserve(link_codec::encoded_size(frame, 0));
  link_codec::encode(e->wire, frame, {});
  return e;
}

}  // namespace

event_ptr make_client_info(const client_record& c, const std::string& gateway_address) {
  thread_local link::v2::Frame frame;
  fill_info(*frame.mutable_client(), c, gateway_address);
  return finish(frame, 0);
}

event_ptr make_connect_event(const client_record& c, std::uint64_t event_id,
                             const codec::ws::http_request* request, bool decision_required,
                             const ssl_st* tls) {
  auto& ev = scratch(c, event_id, link::v2::EVENT_KIND_CONNECT, t_frame);
  if (tls != nullptr) {
    auto* info = ev.mutable_tls();
    info->set_version(SSL_get_version(tls));
    info->set_cipher(SSL_get_cipher_name(tls));
    if (const char* sni = SSL_get_servername(tls, TLSEXT_NAMETYPE_host_name)) {
      info->set_server_name(sni);
    }
    if (auto peer = net::verified_peer_certificate(tls)) {
      auto* cert = info->mutable_client_certificate();
      cert->set_subject(std::move(peer->subject));
      for (auto& san : peer->sans) {
        cert->add_sans(std::move(san));
      }
    }
  }
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
  return finish(t_frame, event_id);
}

namespace {

namespace pb = protowire;

using link::v2::ClientEvent;
// One-byte tags only.
static_assert(ClientEvent::kRedeliveredFieldNumber < 16 && link::v2::Frame::kEventFieldNumber < 16);
// Fields in number order, as protobuf writes them.
static_assert(ClientEvent::kBinaryFieldNumber < ClientEvent::kClientIdFieldNumber &&
              ClientEvent::kClientIdFieldNumber < ClientEvent::kRedeliveredFieldNumber);

}  // namespace

event_ptr make_message_event(const client_record& c, std::uint64_t event_id,
                             std::string_view payload, bool binary) {
  // event_id, kind, binary, client_id, then redelivered (explicit presence: always, 2 bytes).
  const std::size_t event = pb::uint_size(event_id) + pb::uint_size(link::v2::EVENT_KIND_MESSAGE) +
                            (binary ? 2 : 0) + pb::bytes_size(c.id()) + 2;
  const std::size_t header = pb::len_field_size(event);

  // Recycled once acknowledged: in a steady state a message allocates neither its event nor
  // its bytes.
  auto e = event_recycler<encoded_event>::make();
  e->id = event_id;
  auto& wire = e->wire;
  wire.reserve(link_codec::k_prefix_size + header + payload.size());
  link_codec::append_prefix(wire, header, payload.size());
  wire.resize(link_codec::k_prefix_size + header);
  char* w = wire.data() + link_codec::k_prefix_size;
  pb::put_len(w, link::v2::Frame::kEventFieldNumber, event);
  pb::put_uint(w, ClientEvent::kEventIdFieldNumber, event_id);
  pb::put_uint(w, ClientEvent::kKindFieldNumber, link::v2::EVENT_KIND_MESSAGE);
  pb::put_uint(w, ClientEvent::kBinaryFieldNumber, binary ? 1 : 0);
  pb::put_bytes(w, ClientEvent::kClientIdFieldNumber, c.id());
  // Last, so that redelivered_copy() finds it in the header's last byte.
  *w++ = pb::tag(ClientEvent::kRedeliveredFieldNumber, pb::k_varint);
  *w++ = 0;
  wire.append(payload);
  return e;
}

event_ptr make_close_event(const client_record& c, std::uint64_t event_id,
                           const std::string& gateway_address, const std::string& reason) {
  auto& ev = scratch(c, event_id, link::v2::EVENT_KIND_CLOSE, t_frame);
  ev.set_close_reason(reason);
  fill_info(*ev.mutable_client(), c, gateway_address);
  auto e = finish(t_frame, event_id);
  e->carries_info = true;
  return e;
}

std::uint64_t event_id_of(const event_ptr& event) {
  return event->id;
}

namespace {
// The header's last byte: the value of `redelivered` (see the proto). Read from the prefix's
// header length (the event was encoded here, whatever its size), not by decoding the frame
// under limits it need not fit.
std::size_t flag_offset(const std::string& wire) {
  const auto* p = reinterpret_cast<const unsigned char*>(wire.data()) + 4;
  const std::size_t header_len = (std::size_t{p[0]} << 24) | (std::size_t{p[1]} << 16) |
                                 (std::size_t{p[2]} << 8) | std::size_t{p[3]};
  return link_codec::k_prefix_size + header_len - 1;
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
