#pragma once

#include <memory>

#include "gateway/bus_subscriber.hpp"

namespace gwx::gateway {

/// Redis pub/sub: hiredis's async API on the bus thread's own io_context (common/bus/redis_asio).
std::unique_ptr<bus_subscriber> make_redis_subscriber(bus_config config,
                                                      bus_subscriber::dispatch_fn dispatch);

/// AMQP 0-9-1 (fanout or routed): rabbitmq-c's blocking API on the bus thread.
std::unique_ptr<bus_subscriber> make_amqp_subscriber(bus_config config,
                                                     bus_subscriber::dispatch_fn dispatch);

}  // namespace gwx::gateway
