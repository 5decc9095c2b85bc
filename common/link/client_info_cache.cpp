#include "common/link/client_info_cache.hpp"

#include <cstring>
#include <limits>

#include "common/client_id.hpp"

namespace gwx::link_clients {
namespace {
// Tables of distinct listeners and gateway addresses per link: a gateway has a handful.
constexpr std::size_t k_max_table = std::numeric_limits<std::uint16_t>::max() - 1;
}  // namespace

std::uint16_t client_info_cache::intern(std::vector<std::string>& table, const std::string& value) {
  if (value.empty()) {
    return 0;
  }
  for (std::size_t i = 0; i < table.size(); ++i) {
    if (table[i] == value) {
      return static_cast<std::uint16_t>(i + 1);
    }
  }
  if (table.size() >= k_max_table) {
    return 0;
  }
  table.push_back(value);
  return static_cast<std::uint16_t>(table.size());
}

void client_info_cache::remember(const link::v2::ClientInfo& info) {
  const auto connection = client_id_connection(info.client_id());
  if (!connection) {
    return;
  }
  entry e;
  link::v2::ClientInfo extra;
  const auto& address = info.remote_address();
  if (address.size() <= e.address.size()) {
    std::memcpy(e.address.data(), address.data(), address.size());
    e.address_size = static_cast<std::uint8_t>(address.size());
  } else {
    extra.set_remote_address(address);
  }
  e.port = static_cast<std::uint16_t>(info.remote_port());
  e.listener = intern(listeners_, info.listener());
  if (e.listener == 0) {
    extra.set_listener(info.listener());
  }
  e.gateway = intern(gateways_, info.gateway_address());
  if (e.gateway == 0) {
    extra.set_gateway_address(info.gateway_address());
  }
  extra.set_uid(info.uid());
  *extra.mutable_session() = info.session();
  extra.set_session_seq(info.session_seq());
  if (extra.ByteSizeLong() != 0) {
    e.extra = std::make_unique<link::v2::ClientInfo>(std::move(extra));
  }
  clients_.insert_or_assign(*connection, std::move(e));
}

void client_info_cache::fill(const entry& e, link::v2::ClientInfo& info) const {
  info.set_remote_address(std::string(e.address.data(), e.address_size));
  info.set_remote_port(e.port);
  if (e.listener != 0) {
    info.set_listener(listeners_[e.listener - 1]);
  }
  if (e.gateway != 0) {
    info.set_gateway_address(gateways_[e.gateway - 1]);
  }
  if (e.extra) {
    info.MergeFrom(*e.extra);
  }
}

bool client_info_cache::complete(link::v2::ClientEvent& event) {
  if (event.has_client()) {
    if (event.client_id().empty()) {
      event.set_client_id(event.client().client_id());
    }
    if (event.kind() == link::v2::EVENT_KIND_CLOSE) {
      if (const auto connection = client_id_connection(event.client_id())) {
        clients_.erase(*connection);
      }
    } else {
      remember(event.client());
    }
    return true;
  }
  auto* info = event.mutable_client();
  const auto connection = client_id_connection(event.client_id());
  const auto it = connection ? clients_.find(*connection) : clients_.end();
  if (it == clients_.end()) {
    info->set_client_id(event.client_id());
    return false;
  }
  // Moved, not copied: the handler reads it from the info.
  info->mutable_client_id()->swap(*event.mutable_client_id());
  fill(it->second, *info);
  if (event.kind() == link::v2::EVENT_KIND_CLOSE) {
    clients_.erase(it);
  }
  return true;
}

void client_info_cache::clear() {
  clients_ = decltype(clients_)();  // its buckets too
}

}  // namespace gwx::link_clients
