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

bool client_info_cache::complete(link::v2::ClientEvent& event) {
  if (event.has_client()) {
    if (event.client_id().empty()) {
      event.set_client_id(event.client().client_id());
    }
    view(event);  // remembers it
    forget_closed(event);
    return true;
  }
  const auto v = view(event);
  auto* info = event.mutable_client();
  if (!v) {
    info->set_client_id(event.client_id());
    return false;
  }
  info->set_remote_address(std::string(v->remote_address));
  info->set_remote_port(v->remote_port);
  info->set_gateway_address(std::string(v->gateway_address));
  info->set_listener(std::string(v->listener));
  info->set_uid(std::string(v->uid));
  if (v->session != nullptr) {
    *info->mutable_session() = *v->session;
  }
  info->set_session_seq(v->session_seq);
  forget_closed(event);
  // Moved, not copied: the handler reads it from the info.
  info->mutable_client_id()->swap(*event.mutable_client_id());
  return true;
}

client_view view_of(const link::v2::ClientInfo& info) {
  client_view v;
  v.client_id = info.client_id();
  v.remote_address = info.remote_address();
  v.remote_port = info.remote_port();
  v.gateway_address = info.gateway_address();
  v.listener = info.listener();
  v.uid = info.uid();
  v.session = &info.session();
  v.session_seq = info.session_seq();
  return v;
}

// What fill() makes of an entry: the inline fields, overridden by what `extra` sets.
client_view client_info_cache::view_of(const entry& e) const {
  client_view v;
  v.remote_address = std::string_view(e.address.data(), e.address_size);
  v.remote_port = e.port;
  if (e.listener != 0) {
    v.listener = listeners_[e.listener - 1];
  }
  if (e.gateway != 0) {
    v.gateway_address = gateways_[e.gateway - 1];
  }
  if (const auto* x = e.extra.get()) {
    if (!x->remote_address().empty()) {
      v.remote_address = x->remote_address();
    }
    if (x->remote_port() != 0) {
      v.remote_port = x->remote_port();
    }
    if (!x->listener().empty()) {
      v.listener = x->listener();
    }
    if (!x->gateway_address().empty()) {
      v.gateway_address = x->gateway_address();
    }
    v.uid = x->uid();
    v.session = &x->session();
    v.session_seq = x->session_seq();
  }
  return v;
}

std::optional<client_view> client_info_cache::view(const link::v2::ClientEvent& event) {
  if (event.has_client()) {
    if (event.kind() != link::v2::EVENT_KIND_CLOSE) {
      remember(event.client());
    }
    auto v = link_clients::view_of(event.client());
    if (v.client_id.empty()) {
      v.client_id = event.client_id();
    }
    return v;
  }
  const auto connection = client_id_connection(event.client_id());
  const auto it = connection ? clients_.find(*connection) : clients_.end();
  if (it == clients_.end()) {
    return std::nullopt;
  }
  auto v = view_of(it->second);
  v.client_id = event.client_id();
  return v;
}

void client_info_cache::forget_closed(const link::v2::ClientEvent& event) {
  if (event.kind() != link::v2::EVENT_KIND_CLOSE) {
    return;
  }
  const auto& id = event.client_id().empty() ? event.client().client_id() : event.client_id();
  if (const auto connection = client_id_connection(id)) {
    clients_.erase(*connection);
  }
}

void client_info_cache::clear() {
  clients_ = decltype(clients_)();  // its buckets too
}

}  // namespace gwx::link_clients
