#include "worker/sdk/context.hpp"

namespace gwx {

context::context(gateway_api& api, client_info info, session_map session, bool redelivered,
                 std::optional<tls_info> tls)
    : api_(api),
      own_info_(std::move(info)),
      session_(std::move(session)),
      redelivered_(redelivered),
      tls_(std::move(tls)) {}

context::context(const context& other)
    : api_(other.api_),
      own_info_(*other.info_),
      session_(other.session_),
      redelivered_(other.redelivered_),
      tls_(other.tls_) {}

void context::send_to_current_client(const message& msg) {
  api_.send_to_client(info_->client_id, msg);
}

void context::send_to_current_client(message&& msg) {
  api_.send_to_client(info_->client_id, std::move(msg));
}

void context::close_current_client(std::optional<message> final_message) {
  api_.close_client(info_->client_id, std::move(final_message));
}

void context::destroy_current_client() {
  api_.destroy_client(info_->client_id);
}

}  // namespace gwx
