#include "common/cluster/client.hpp"

#include "common/bus/bus_publisher.hpp"
#include "common/cluster/bus_transport.hpp"
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

std::shared_ptr<bus::bus_publisher> make_bus(const client_options& options) {
  if (options.push_bus.empty()) {
    return nullptr;
  }
  return std::make_shared<bus::bus_publisher>(bus::parse_bus_url(options.push_bus));
}

std::shared_ptr<cluster::transport> writes_via(std::shared_ptr<cluster::cluster_core> core,
                                               std::shared_ptr<bus::bus_publisher> bus) {
  if (!bus) {
    return core;
  }
  return std::make_shared<cluster::bus_transport>(std::move(core), std::move(bus));
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

Client::Client(client_options options) : Client(make_core(options), make_bus(options)) {}

Client::Client(std::string_view registers, std::string secret, std::string token, std::string name)
    : Client(shorthand(registers, std::move(secret), std::move(token), std::move(name))) {}

Client::Client(std::shared_ptr<cluster::cluster_core> core, std::shared_ptr<bus::bus_publisher> bus)
    : gateway_api(writes_via(core, bus)), core_(std::move(core)), bus_(std::move(bus)) {}

Client::~Client() {
  stop();
}

void Client::start() {
  core_->start();
  if (bus_) {
    bus_->start();
  }
}

bool Client::wait_ready(std::chrono::milliseconds timeout) {
  return core_->wait_ready(timeout);
}

void Client::stop() {
  if (bus_) {
    bus_->stop();
  }
  core_->stop();
}

std::vector<gateway_status> Client::gateways() const {
  return core_->gateways();
}

std::uint64_t Client::pushes_dropped() const {
  return core_->pushes_dropped();
}

bool Client::reload_tls() {
  return core_->reload_link_tls();
}

std::vector<std::string> Client::flush(std::chrono::milliseconds timeout) {
  const auto t = timeout.count() == 0 ? core_->default_timeout() : timeout;
  if (bus_) {
    return bus_->flush(t) ? std::vector<std::string>{} : std::vector<std::string>{"bus"};
  }
  return core_->flush(t);
}

}  // namespace gwx
