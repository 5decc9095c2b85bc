#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "gwx/link/v2/link.pb.h"

namespace gwx::link_clients {

/// A client's info as views into a ClientInfo or a client_info_cache: valid until that changes.
struct client_view {
  std::string_view client_id;
  std::string_view remote_address;
  std::uint32_t remote_port = 0;
  std::string_view gateway_address;
  std::string_view listener;
  std::string_view uid;
  /// The session entries (the last of a repeated key wins); null: none.
  const google::protobuf::RepeatedPtrField<link::v2::SessionEntry>* session = nullptr;
  std::uint64_t session_seq = 0;
};

/// `info` as views.
client_view view_of(const link::v2::ClientInfo& info);

/// What a worker knows of the clients of one gateway link: each client's ClientInfo as that
/// gateway last sent it (a ClientInfo frame, or the info a CLOSE carries), so that events, which
/// name their client by id only, reach the handler with it. Kept small per client: the hash
/// node holds the port, the listener and gateway address as indices into per-link tables, and an
/// IPv4 address inline (an idle IPv4 client without uid or session: one 48-byte node and its
/// bucket); the uid, the session and anything that does not fit go in a block allocated only
/// for clients that have them. Keyed by the connection number of the client_id, which is
/// unique among one gateway's clients. Not thread-safe: one per link, on the link's thread.
class client_info_cache {
 public:
  /// Remembers `info`, replacing what was known of its client. Ignored when its client_id is
  /// not one.
  void remember(const link::v2::ClientInfo& info);

  /// Completes `event` with the info of its client: an event that carries it (CLOSE) updates
  /// what is known, one that does not gets it from here (its client_id moves into the info).
  /// A CLOSE forgets the client. False when the client is unknown: the info holds only the
  /// client_id.
  bool complete(link::v2::ClientEvent& event);

  /// The info `event`'s handler sees, without copying it: the info the event carries (which
  /// updates what is known, like complete()), else what is known of its client; nullopt when
  /// its client is unknown. Call forget_closed() once the views are no longer needed.
  std::optional<client_view> view(const link::v2::ClientEvent& event);

  /// After view(): a CLOSE forgets its client.
  void forget_closed(const link::v2::ClientEvent& event);

  /// Forgets every client (the link went away: the next link starts from nothing).
  void clear();

  /// Clients known.
  std::size_t size() const { return clients_.size(); }

 private:
  struct entry {
    /// uid, session, session_seq, and any address, listener or gateway address that does not
    /// fit below; null for most clients.
    std::unique_ptr<link::v2::ClientInfo> extra;
    std::array<char, 15> address{};
    std::uint8_t address_size = 0;
    std::uint16_t port = 0;
    /// 1 + index into listeners_ / gateways_; 0: empty or in `extra`.
    std::uint16_t listener = 0;
    std::uint16_t gateway = 0;
  };

  /// 1 + the index of `value` in `table` (added when new); 0 when `value` is empty or the table
  /// is full.
  static std::uint16_t intern(std::vector<std::string>& table, const std::string& value);
  client_view view_of(const entry& e) const;

  std::unordered_map<std::uint64_t, entry> clients_;
  std::vector<std::string> listeners_;
  std::vector<std::string> gateways_;
};

}  // namespace gwx::link_clients
