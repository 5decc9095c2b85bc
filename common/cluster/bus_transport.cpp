#include "common/cluster/bus_transport.hpp"

#include <spdlog/spdlog.h>

#include "common/bus/bus_publisher.hpp"

namespace gwx::cluster {

bus_transport::bus_transport(std::shared_ptr<transport> links,
                             std::shared_ptr<bus::bus_publisher> publisher)
    : links_(std::move(links)), publisher_(std::move(publisher)) {}

void bus_transport::publish(const link::v2::Command& cmd) {
  std::string why;
  auto messages = bus::encode_bus_command(cmd, publisher_->routed(), &why);
  if (messages.empty()) {
    if (!why.empty()) {
      spdlog::debug("not published on the bus: {}", why);
    }
    return;
  }
  publisher_->publish(std::move(messages));
}

void bus_transport::send_to_holder(std::string /*client_id*/, link::v2::Command cmd) {
  publish(cmd);
}

void bus_transport::send_to_all(link::v2::Command cmd) {
  publish(cmd);
}

void bus_transport::send_each(command_builder build) {
  // gateway_api gives whole commands to a transport that takes them; anything else that asks
  // for per-gateway commands goes over the links, where each gateway gets only its own.
  links_->send_each(std::move(build));
}

void bus_transport::request_each(command_builder build, std::chrono::milliseconds timeout,
                                 gather_handler done) {
  links_->request_each(std::move(build), timeout, std::move(done));
}

std::chrono::milliseconds bus_transport::default_timeout() const {
  return links_->default_timeout();
}

bool bus_transport::on_network_thread() const {
  return links_->on_network_thread();
}

bool bus_transport::stopped() const {
  return links_->stopped();
}

bool bus_transport::run_until(const std::function<bool()>& done,
                              std::chrono::steady_clock::time_point deadline) {
  return links_->run_until(done, deadline);
}

bool bus_transport::can_run_nested() const {
  return links_->can_run_nested();
}

}  // namespace gwx::cluster
