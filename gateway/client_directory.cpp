#include "gateway/client_directory.hpp"

#include <algorithm>
#include <set>

#include "common/client_id.hpp"
#include "common/link/link_entries.hpp"

namespace gwx::gateway {
namespace {

using key_kind = membership_listener::key_kind;

void add_session(link::v2::QueryResult& r, const client_record& c) {
  auto& s = (*r.mutable_sessions())[c.id()];
  s.clear_values();
  link_entries::append(*s.mutable_values(), c.session());
}

}  // namespace

void client_directory::add_to(index& idx, key_kind kind, const std::string& key, client_record* c) {
  auto& members = idx[key];
  members.insert(c);
  if (members.size() == 1 && listener_ != nullptr) {
    listener_->on_first_holder(kind, key);
  }
}

void client_directory::remove_from(index& idx, key_kind kind, const std::string& key,
                                   client_record* c) {
  if (auto it = idx.find(key); it != idx.end()) {
    it->second.erase(c);
    if (it->second.empty()) {
      // The key may be the client's own copy, about to be erased: the listener sees it first.
      if (listener_ != nullptr) {
        listener_->on_last_holder(kind, key);
      }
      idx.erase(it);
    }
  }
}

client_record::client_record(std::uint64_t connection, std::string id,
                             const listener_config& listener, std::string remote_ip,
                             std::uint16_t remote_port, std::shared_ptr<client_port> port)
    : connection_(connection),
      id_(std::move(id)),
      listener_(&listener),
      remote_ip_(std::move(remote_ip)),
      remote_port_(remote_port),
      port_(std::move(port)) {}

// Read through member() only, never during static initialization.
const client_record::membership client_record::k_no_membership{};

client_directory::client_directory(std::uint64_t epoch, unsigned loop)
    : epoch_(epoch), loop_(loop) {}

client_record& client_directory::add(std::uint64_t connection, std::string id,
                                     const listener_config& listener, std::string remote_ip,
                                     std::uint16_t remote_port, std::shared_ptr<client_port> port) {
  return clients_
      .try_emplace(connection, connection, std::move(id), listener, std::move(remote_ip),
                   remote_port, std::move(port))
      .first->second;
}

void client_directory::erase(std::uint64_t connection) {
  const auto it = clients_.find(connection);
  if (it == clients_.end()) {
    return;
  }
  forget_membership(it->second);
  clients_.erase(it);
}

client_record* client_directory::find_pending(const std::string& client_id) {
  // The tail names the connection; comparing the whole id with the record's covers the rest
  // (gateway address and epoch).
  const auto connection = client_id_connection(client_id);
  if (!connection || (*connection & 0xff) != loop_) {
    return nullptr;
  }
  const auto it = clients_.find(*connection);
  return it == clients_.end() || it->second.id() != client_id ? nullptr : &it->second;
}

client_record* client_directory::find(const std::string& client_id) {
  auto* c = find_pending(client_id);
  return c != nullptr && c->addressable() ? c : nullptr;
}

client_record* client_directory::find_connection(std::uint64_t connection) {
  const auto it = clients_.find(connection);
  return it == clients_.end() ? nullptr : &it->second;
}

std::size_t client_directory::addressable_count() const {
  std::size_t n = 0;
  for (const auto& [conn, c] : clients_) {
    n += c.addressable() ? 1 : 0;
  }
  return n;
}

const std::unordered_set<client_record*>* client_directory::group(const std::string& name) const {
  const auto it = groups_.find(name);
  return it == groups_.end() ? nullptr : &it->second;
}

const std::unordered_set<client_record*>* client_directory::uid(const std::string& uid) const {
  const auto it = uids_.find(uid);
  return it == uids_.end() ? nullptr : &it->second;
}

bool client_directory::bind(client_record& c, const std::string& uid) {
  if (c.uid() == uid) {
    return true;
  }
  if (uid.size() + c.member().session_bytes > k_max_client_info_bytes) {
    return false;
  }
  unbind(c);
  if (uid.empty()) {
    return true;
  }
  c.member_to_write().uid = uid;
  add_to(uids_, key_kind::uid, uid, &c);
  c.delivery_.info_changed();
  return true;
}

void client_directory::unbind(client_record& c) {
  if (c.uid().empty()) {
    return;
  }
  auto& m = c.member_to_write();
  remove_from(uids_, key_kind::uid, m.uid, &c);
  m.uid.clear();
  c.delivery_.info_changed();
}

bool client_directory::join(client_record& c, const std::string& group) {
  const auto& now = c.member();
  const auto it = std::lower_bound(now.groups.begin(), now.groups.end(), group);
  if (it != now.groups.end() && *it == group) {
    return true;
  }
  if (now.groups.size() >= k_max_client_groups ||
      now.group_bytes + group.size() > k_max_client_group_bytes) {
    return false;
  }
  const auto at = it - now.groups.begin();
  auto& m = c.member_to_write();
  m.groups.insert(m.groups.begin() + at, group);
  m.group_bytes += group.size();
  add_to(groups_, key_kind::group, group, &c);
  return true;
}

void client_directory::leave(client_record& c, const std::string& group) {
  if (!c.member_) {
    return;
  }
  auto& groups = c.member_->groups;
  const auto it = std::lower_bound(groups.begin(), groups.end(), group);
  if (it == groups.end() || *it != group) {
    return;
  }
  // The index first: `group` may refer to the very string erased from the client's list below.
  remove_from(groups_, key_kind::group, group, &c);
  c.member_->group_bytes -= it->size();
  groups.erase(it);
}

void client_directory::ungroup(const std::string& group) {
  const auto it = groups_.find(group);
  if (it == groups_.end()) {
    return;
  }
  const auto members = it->second;
  const std::string name = group;  // `group` may be a member's own copy, erased below
  for (auto* c : members) {
    leave(*c, name);
  }
}

void client_directory::leave_all(client_record& c) {
  if (!c.member_) {
    return;
  }
  for (const auto& group : c.member_->groups) {
    remove_from(groups_, key_kind::group, group, &c);
  }
  c.member_->groups.clear();
  c.member_->group_bytes = 0;
}

void client_directory::forget_membership(client_record& c) {
  unbind(c);
  leave_all(c);
}

namespace {
// Applies `op` to `session` (replace or merge, then the erasures), whose keys and values hold
// `bytes`; returns what they hold after it, counted as they change (never by a walk of all).
std::size_t apply(session_values& session, std::size_t bytes, const link::v2::SessionWrite& op) {
  if (!op.merge()) {
    session.clear();
    bytes = 0;
  }
  for (const auto& e : op.session()) {
    auto [it, added] = session.try_emplace(e.key());
    bytes -= added ? 0 : it->first.size() + it->second.size();
    it->second = e.value();
    bytes += it->first.size() + it->second.size();
  }
  for (const auto& k : op.erase_keys()) {
    const auto it = session.find(k);
    if (it != session.end()) {
      bytes -= it->first.size() + it->second.size();
      session.erase(it);
    }
  }
  return bytes;
}
}  // namespace

bool client_directory::write_session(client_record& c, const link::v2::SessionWrite& op) {
  auto& m = c.member_to_write();
  m.session_seq = std::max(m.session_seq, op.writer_seq());
  c.delivery_.info_changed();
  // Most writes are small: what they could add at most is checked before anything is copied.
  std::size_t most = op.merge() ? m.session_bytes : 0;
  for (const auto& e : op.session()) {
    most += e.key().size() + e.value().size();
  }
  if (m.uid.size() + most <= k_max_client_info_bytes) {
    m.session_bytes = apply(m.session, m.session_bytes, op);
    return true;
  }
  auto after = m.session;
  const auto bytes = apply(after, m.session_bytes, op);
  if (m.uid.size() + bytes > k_max_client_info_bytes) {
    return false;
  }
  m.session = std::move(after);
  m.session_bytes = bytes;
  return true;
}

void client_directory::query(const link::v2::Query& q, link::v2::QueryResult& r) {
  const auto first = [](const auto& list) -> std::string {
    return list.empty() ? std::string{} : list[0];
  };
  switch (q.kind()) {
    case link::v2::QUERY_KIND_ALL_CLIENT_COUNT:
      r.set_count(addressable_count());
      break;
    case link::v2::QUERY_KIND_CLIENT_COUNT_BY_GROUPS:
      for (const auto& g : std::set<std::string>(q.groups().begin(), q.groups().end())) {
        const auto* members = group(g);
        auto* e = r.add_counts();
        e->set_key(g);
        e->set_value(members == nullptr ? 0 : members->size());
      }
      break;
    case link::v2::QUERY_KIND_CLIENT_IDS_BY_GROUP:
      if (const auto* members = group(first(q.groups()))) {
        for (const auto* c : *members) {
          r.add_client_ids(c->id());
        }
      }
      break;
    case link::v2::QUERY_KIND_CLIENT_SESSIONS_BY_GROUP:
      if (const auto* members = group(first(q.groups()))) {
        for (const auto* c : *members) {
          add_session(r, *c);
        }
      }
      break;
    case link::v2::QUERY_KIND_ALL_CLIENT_IDS:
      for (const auto& [conn, c] : clients_) {
        if (c.addressable()) {
          r.add_client_ids(c.id());
        }
      }
      break;
    case link::v2::QUERY_KIND_UIDS_BY_GROUP:
      if (const auto* members = group(first(q.groups()))) {
        std::set<std::string> uids;
        for (const auto* c : *members) {
          if (!c->uid().empty()) {
            uids.insert(c->uid());
          }
        }
        r.mutable_uids()->Add(uids.begin(), uids.end());
      }
      break;
    case link::v2::QUERY_KIND_ALL_UIDS:
    case link::v2::QUERY_KIND_STATS:
      for (const auto& [uid, members] : uids_) {
        r.add_uids(uid);
      }
      if (q.kind() == link::v2::QUERY_KIND_STATS) {
        for (const auto& [group, members] : groups_) {
          r.add_groups(group);
        }
        r.mutable_stats()->set_clients(addressable_count());
      }
      break;
    case link::v2::QUERY_KIND_ALL_GROUP_IDS:
      for (const auto& [group, members] : groups_) {
        r.add_groups(group);
      }
      break;
    case link::v2::QUERY_KIND_GROUPS_OF_CLIENT:
      if (const auto* c = find(first(q.client_ids()))) {
        r.mutable_groups()->Add(c->groups().begin(), c->groups().end());
      }
      break;
    case link::v2::QUERY_KIND_SESSION:
      if (const auto* c = find(first(q.client_ids()))) {
        add_session(r, *c);
      }
      break;
    case link::v2::QUERY_KIND_IS_ONLINE:
      for (const auto& id : q.client_ids()) {
        if (find(id) != nullptr) {
          r.add_client_ids(id);
        }
      }
      break;
    case link::v2::QUERY_KIND_CLIENT_IDS_BY_UIDS:
      for (const auto& u : std::set<std::string>(q.uids().begin(), q.uids().end())) {
        if (const auto* members = uid(u)) {
          auto* e = r.add_clients_by_uid();
          e->set_key(u);
          for (const auto* c : *members) {
            e->mutable_value()->add_values(c->id());
          }
        }
      }
      break;
    case link::v2::QUERY_KIND_UID_OF_CLIENT:
      if (const auto* c = find(first(q.client_ids())); c != nullptr && !c->uid().empty()) {
        r.add_uids(c->uid());
      }
      break;
    default:
      break;
  }
}

}  // namespace gwx::gateway
