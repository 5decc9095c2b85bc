#pragma once

#include <memory>

#include "common/cluster/transport.hpp"

namespace gwx::bus {
class bus_publisher;
}

namespace gwx::cluster {

/// `--push-via bus`: the Gateway API's writes go to the push bus as JSON messages (split by
/// routing key in AMQP routed mode, so a send_to_uid reaches only the gateways holding the
/// uid); queries and everything else keep using the links of `links`. Thread-safe like every
/// transport.
class bus_transport final : public transport {
 public:
  bus_transport(std::shared_ptr<transport> links, std::shared_ptr<bus::bus_publisher> publisher);

  void send_to_holder(std::string client_id, link::v2::Command cmd) override;
  void send_to_all(link::v2::Command cmd) override;
  /// Per-gateway commands (gateway_api sends whole ones here) go over the links.
  void send_each(command_builder build) override;
  void request_each(command_builder build, std::chrono::milliseconds timeout,
                    gather_handler done) override;
  std::chrono::milliseconds default_timeout() const override;
  bool on_network_thread() const override;
  bool stopped() const override;
  bool run_until(const std::function<bool()>& done,
                 std::chrono::steady_clock::time_point deadline) override;
  bool can_run_nested() const override;
  bool takes_whole_commands() const override { return true; }

  bus::bus_publisher& publisher() { return *publisher_; }

 private:
  void publish(const link::v2::Command& cmd);

  std::shared_ptr<transport> links_;
  std::shared_ptr<bus::bus_publisher> publisher_;
};

}  // namespace gwx::cluster
