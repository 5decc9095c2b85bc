#include "common/bus/push_options.hpp"

#include <stdexcept>

#include "common/bus/bus_url.hpp"

namespace gwx::bus {

namespace po = boost::program_options;

void add_push_options(po::options_description& options) {
  options.add_options()(
      "push-via", po::value<std::string>()->default_value("links")->value_name("MODE"),
      "links: Gateway API writes go over the links to the gateways; bus: they are published to "
      "--bus as JSON (at-most-once; in AMQP routed mode a send to a uid or group reaches only "
      "the gateways holding it); queries always use the links")(
      "bus", po::value<std::string>()->default_value("")->value_name("URL"),
      "push bus for --push-via bus: redis://[USER:PASSWORD@]HOST:PORT/CHANNEL or "
      "amqp://USER:PASSWORD@HOST:PORT/VHOST?exchange=NAME&mode=fanout|routed (the gateways' "
      "--bus)");
}

std::string push_bus_of(const po::variables_map& values) {
  const auto& via = values["push-via"].as<std::string>();
  const auto& bus = values["bus"].as<std::string>();
  if (via == "links") {
    return {};
  }
  if (via != "bus") {
    throw std::invalid_argument("--push-via must be links or bus");
  }
  if (bus.empty()) {
    throw std::invalid_argument("--push-via bus needs --bus URL");
  }
  parse_bus_url(bus);  // a bad URL is refused now, not at the first push
  return bus;
}

}  // namespace gwx::bus
