#include "common/cluster/client.hpp"

#include "common/cluster/cluster_core.hpp"

namespace gwx {
namespace {

std::shared_ptr<cluster::cluster_core> make_core(client_options options) {
  if (options.name.empty()) {
    options.name = "gwx-client";
  }
  return std::make_shared<cluster::cluster_core>(
      cluster::make_core_options(std::move(options), link::v2::PEER_ROLE_CLIENT));
}

client_options shorthand(std::string_view registers, std::string secret, std::string token,
                         std::string name) {
  client_options o;
  o.registers = parse_host_port_list(registers);
  o.secret = std::move(secret);
  o.token = std::move(token);
  o.name = std::move(name);
  return o;
}

}  // namespace

Client::Client(client_options options) : Client(make_core(std::move(options))) {}

Client::Client(std::string_view registers, std::string secret, std::string token, std::string name)
    : Client(shorthand(registers, std::move(secret), std::move(token), std::move(name))) {}

Client::Client(std::shared_ptr<cluster::cluster_core> core) : gateway_api(core), core_(core) {}

Client::~Client() {
  stop();
}

void Client::start() {
  core_->start();
}

bool Client::wait_ready(std::chrono::milliseconds timeout) {
  return core_->wait_ready(timeout);
}

void Client::stop() {
  core_->stop();
}

std::vector<gateway_status> Client::gateways() const {
  return core_->gateways();
}

bool Client::reload_tls() {
  return core_->reload_link_tls();
}

std::vector<std::string> Client::flush(std::chrono::milliseconds timeout) {
  return core_->flush(timeout.count() == 0 ? core_->default_timeout() : timeout);
}

}  // namespace gwx
