#include "worker/sdk/session_tracker.hpp"

namespace gwx::sdk {

session_map session_tracker::resolve(const std::string& client_id, std::uint64_t link_serial,
                                     std::uint64_t event_seq, session_map from_gateway) {
  if (pending_.empty()) {
    return from_gateway;  // the usual case: no hashing of the client id
  }
  const auto it = pending_.find(client_id);
  if (it == pending_.end()) {
    return from_gateway;
  }
  if (event_seq < it->second.writer_seq && link_serial == it->second.link_serial) {
    return it->second.session;
  }
  pending_.erase(it);
  return from_gateway;
}

void session_tracker::wrote(const std::string& client_id, std::uint64_t link_serial,
                            std::uint64_t writer_seq, session_map session) {
  auto& p = pending_[client_id];
  p.link_serial = link_serial;
  p.writer_seq = writer_seq;
  p.session = std::move(session);
}

void session_tracker::forget_link(std::uint64_t link_serial) {
  std::erase_if(pending_,
                [link_serial](const auto& p) { return p.second.link_serial == link_serial; });
}

std::uint64_t first_writer_seq(std::chrono::system_clock::time_point now) {
  constexpr int k_writes_per_ms_bits = 20;
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch());
  return static_cast<std::uint64_t>(ms.count()) << k_writes_per_ms_bits;
}

std::optional<link::v2::SessionWrite> session_diff(const std::string& client_id,
                                                   const session_map& before,
                                                   const session_map& after) {
  if (before == after) {
    return std::nullopt;
  }
  link::v2::SessionWrite write;
  write.set_client_id(client_id);
  write.set_merge(true);
  for (const auto& [key, value] : after) {
    const auto it = before.find(key);
    if (it == before.end() || it->second != value) {
      auto* e = write.add_session();
      e->set_key(key);
      e->set_value(value);
    }
  }
  for (const auto& [key, value] : before) {
    if (after.count(key) == 0) {
      write.add_erase_keys(key);
    }
  }
  return write;
}

}  // namespace gwx::sdk
