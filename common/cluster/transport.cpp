#include "common/cluster/transport.hpp"

namespace gwx::cluster {

client_target::client_target(std::string_view id) : client_id(id), parts(parse_client_id(id)) {
  if (parts) {
    gateway_id = epoch_to_hex(parts->epoch);
  }
}

bool gateway_view::holds(const client_target& target) const {
  return target.parts && target.gateway_id == gateway_id &&
         target.parts->gateway_address == internal_address;
}

}  // namespace gwx::cluster
