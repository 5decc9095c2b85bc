#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "gateway/client_port.hpp"
#include "gateway/delivery_state.hpp"
#include "gateway/listener_config.hpp"
#include "gwx/link/v2/link.pb.h"

namespace gwx::gateway {

/// A client's session: key/value pairs kept at the gateway.
using session_values = std::map<std::string, std::string>;

/// What one client's uid and session may hold together, in bytes (keys and values counted). A
/// client's info travels to its worker in one link frame beside a message of up to
/// k_max_client_message, which must stay within the link's 64 MiB: a bigger session made every
/// event of its client break the worker's link. A uid or session write past it is refused.
inline constexpr std::size_t k_max_client_info_bytes = 512 << 10;

/// How many groups one client may be in, and what their names may hold together in bytes. The
/// groups of a client are answered in one link frame (groups of a client) and each costs an
/// index entry: without a bound, one client joined to ever more groups grew the gateway without
/// limit. A join past either is refused.
inline constexpr std::size_t k_max_client_groups = 4096;
inline constexpr std::size_t k_max_client_group_bytes = 512 << 10;

/// One client as its loop knows it: identity, membership, session and delivery state, and the
/// port that reaches its connection. Changed only through client_directory (membership,
/// session) and event_router (delivery).
class client_record {
 public:
  client_record(std::uint64_t connection, std::string id, const listener_config& listener,
                std::string remote_ip, std::uint16_t remote_port,
                std::shared_ptr<client_port> port);

  std::uint64_t connection() const { return connection_; }
  const std::string& id() const { return id_; }
  const listener_config& listener() const { return *listener_; }
  const std::string& remote_ip() const { return remote_ip_; }
  std::uint16_t remote_port() const { return remote_port_; }

  const std::string& uid() const { return member().uid; }
  /// Sorted.
  const std::vector<std::string>& groups() const { return member().groups; }
  const session_values& session() const { return member().session; }
  /// Bytes of the session's keys and values (what k_max_client_info_bytes counts with the uid).
  std::size_t session_bytes() const { return member().session_bytes; }
  /// Highest writer sequence of a session write applied.
  std::uint64_t session_seq() const { return member().session_seq; }

  /// The worker has been told of this client (CONNECT sent); it will hear of its close.
  bool announced() const { return announced_; }
  client_state state() const { return port_->current_state(); }
  bool closed() const { return state() == client_state::closed; }
  /// Reachable by commands: announced and neither closing nor closed.
  bool addressable() const {
    if (!announced_) {
      return false;
    }
    const auto s = state();
    return s == client_state::open || s == client_state::deciding;
  }

  client_port& port() const { return *port_; }
  delivery_state& delivery() { return delivery_; }
  const delivery_state& delivery() const { return delivery_; }

 private:
  friend class client_directory;

  /// Uid, groups and session: allocated when the first of them is set, so that a client with
  /// none (most idle connections) pays one pointer for them.
  struct membership {
    std::string uid;
    std::vector<std::string> groups;
    /// Bytes of the group names.
    std::size_t group_bytes = 0;
    session_values session;
    /// Bytes of the session's keys and values.
    std::size_t session_bytes = 0;
    std::uint64_t session_seq = 0;
  };
  static const membership k_no_membership;
  const membership& member() const { return member_ ? *member_ : k_no_membership; }
  membership& member_to_write() {
    if (!member_) {
      member_ = std::make_unique<membership>();
    }
    return *member_;
  }

  std::uint64_t connection_;
  std::string id_;
  const listener_config* listener_;
  std::string remote_ip_;
  std::uint16_t remote_port_;
  bool announced_ = false;
  std::unique_ptr<membership> member_;
  std::shared_ptr<client_port> port_;
  delivery_state delivery_;
};

/// Hears when one loop's first client gets a uid or group and when its last one loses it
/// (unbind, leave, ungroup, close). The AMQP routed bus binds and unbinds routing keys on
/// these transitions. Called on the directory's loop, in the middle of a membership change:
/// an implementation only records the change.
class membership_listener {
 public:
  enum class key_kind { uid, group };
  virtual ~membership_listener() = default;
  /// The first client of this loop got `name`.
  virtual void on_first_holder(key_kind kind, const std::string& name) = 0;
  /// The last client of this loop lost `name`.
  virtual void on_last_holder(key_kind kind, const std::string& name) = 0;
};

/// One loop's clients with their uid and group indices; answers every query kind and applies
/// membership and session writes. Lookups by client_id resolve ids of other gateways, earlier
/// runs or other loops to "gone" (null). No sockets, no timers; one loop only, not thread-safe.
class client_directory {
 public:
  /// `epoch` of this gateway process and `loop`: what a client_id must name to be found here.
  client_directory(std::uint64_t epoch, unsigned loop);
  client_directory(const client_directory&) = delete;
  client_directory& operator=(const client_directory&) = delete;

  /// Adds a client; the record lives until erase().
  client_record& add(std::uint64_t connection, std::string id, const listener_config& listener,
                     std::string remote_ip, std::uint16_t remote_port,
                     std::shared_ptr<client_port> port);
  /// Forgets a client (its membership first).
  void erase(std::uint64_t connection);

  /// An addressable client by client_id; null when gone or not held here.
  client_record* find(const std::string& client_id);
  /// Like find(), but also a client not announced or addressable yet (mid-handshake).
  client_record* find_pending(const std::string& client_id);
  /// By connection number (the key in event ids).
  client_record* find_connection(std::uint64_t connection);

  /// Every record, addressable or not.
  template <typename F>
  void for_each(F&& f) {
    for (auto& [conn, c] : clients_) {
      f(c);
    }
  }
  template <typename F>
  void for_each(F&& f) const {
    for (const auto& [conn, c] : clients_) {
      f(c);
    }
  }
  std::size_t size() const { return clients_.size(); }
  std::size_t addressable_count() const;

  /// Members of a group / clients bound to a uid; null when none.
  const std::unordered_set<client_record*>* group(const std::string& name) const;
  const std::unordered_set<client_record*>* uid(const std::string& uid) const;

  /// Marks the client as known to the workers (it becomes addressable once open).
  void announce(client_record& c) { c.announced_ = true; }

  /// Binds `uid` (one per client; an empty uid unbinds). False, and nothing changed, when the
  /// uid and the session would be over k_max_client_info_bytes.
  bool bind(client_record& c, const std::string& uid);
  void unbind(client_record& c);
  /// Joins `group`. False, and nothing changed, when the client is in k_max_client_groups
  /// groups already or its group names would be over k_max_client_group_bytes.
  bool join(client_record& c, const std::string& group);
  void leave(client_record& c, const std::string& group);
  /// Removes every member from `group`.
  void ungroup(const std::string& group);
  /// Unbinds and leaves every group (the client closed).
  void forget_membership(client_record& c);

  /// Replaces (or merges into) the session, erases keys, keeps the highest writer sequence.
  /// False when the session and the uid would be over k_max_client_info_bytes: the session is
  /// left as it was, but the writer sequence is still kept, so that the writing worker's next
  /// event of the client shows it the session the gateway holds, not its refused write.
  bool write_session(client_record& c, const link::v2::SessionWrite& op);

  /// Who hears of first/last-holder transitions (null: nobody); set before clients arrive.
  void set_membership_listener(membership_listener* l) { listener_ = l; }

  /// Answers a query from this loop's clients. STATS: clients, uids and groups only.
  void query(const link::v2::Query& q, link::v2::QueryResult& r);

 private:
  using index = std::unordered_map<std::string, std::unordered_set<client_record*>>;
  void leave_all(client_record& c);
  void add_to(index& idx, membership_listener::key_kind kind, const std::string& key,
              client_record* c);
  void remove_from(index& idx, membership_listener::key_kind kind, const std::string& key,
                   client_record* c);

  std::uint64_t epoch_;
  unsigned loop_;
  std::unordered_map<std::uint64_t, client_record> clients_;
  index groups_;
  index uids_;
  membership_listener* listener_ = nullptr;
};

}  // namespace gwx::gateway
