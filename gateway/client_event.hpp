#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

struct ssl_st;

namespace gwx::codec::ws {
struct http_request;
}

namespace gwx::gateway {

class client_record;

/// A client event, encoded once in the link's wire format (common/link/link_codec.hpp) and
/// kept so until acknowledged: sending it again, or to another worker, copies bytes and never
/// re-serializes. The only place that knows the event's layout is client_event.cpp.
/// Events name their client by id only; who the client is (address, listener, uid, session)
/// travels in a ClientInfo frame of its own (make_client_info) that the router sends ahead of
/// a client's first event on a link and after the info changed. A CLOSE carries it inline.
struct encoded_event {
  /// Buffers up to this size are kept when a MESSAGE event is recycled (event_recycler.hpp).
  static constexpr std::size_t k_recycled_wire = 512;

  std::uint64_t id = 0;
  /// The whole link frame: prefix, header, payload.
  std::string wire;
  /// The event carries the client's info itself (CLOSE): no ClientInfo frame needed before it.
  bool carries_info = false;

  /// event_recycler: back to a fresh state, the wire's buffer kept.
  void recycle() {
    id = 0;
    wire.clear();
    carries_info = false;
  }
  /// event_recycler: an event with a large buffer (a large message) is freed, not kept.
  bool worth_keeping() const { return wire.capacity() <= k_recycled_wire; }
};
using event_ptr = std::shared_ptr<const encoded_event>;

/// The ClientInfo frame of `c` as it is now (a frame, not an event: its id is 0).
event_ptr make_client_info(const client_record& c, const std::string& gateway_address);

/// CONNECT: with the upgrade request of WebSocket clients (null for TCP listeners) and, for
/// clients of TLS listeners, their TLS connection (version, SNI, verified certificate).
event_ptr make_connect_event(const client_record& c, std::uint64_t event_id,
                             const codec::ws::http_request* request, bool decision_required,
                             const ssl_st* tls = nullptr);
/// MESSAGE with its payload.
event_ptr make_message_event(const client_record& c, std::uint64_t event_id,
                             std::string_view payload, bool binary);
/// CLOSE with its reason and the client's info as it is now (before its uid is released).
event_ptr make_close_event(const client_record& c, std::uint64_t event_id,
                           const std::string& gateway_address, const std::string& reason);

/// The id the worker acknowledges the event with.
std::uint64_t event_id_of(const event_ptr& event);
/// Whether it is flagged as redelivered.
bool is_redelivered(const event_ptr& event);
/// Its size on the link, counted against queue bounds.
std::size_t event_size(const event_ptr& event);
/// A copy flagged as redelivered (the first worker vanished before acknowledging it): the
/// same bytes with the flag's byte set, not a new serialization.
event_ptr redelivered_copy(const event_ptr& event);

}  // namespace gwx::gateway
