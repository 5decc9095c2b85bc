#include "worker/sdk/metered_handler.hpp"

#include <chrono>

#include "common/metrics/registry.hpp"

namespace gwx::sdk {

metered_handler::metered_handler(std::unique_ptr<handler> app, metrics::registry& reg)
    : app_(std::move(app)) {
  auto& events =
      reg.add_counter("gwx_worker_events_total", "Client events handled, by kind.", {"kind"});
  connects_ = events.with({"connect"});
  messages_ = events.with({"message"});
  closes_ = events.with({"close"});
  redelivered_ = reg.add_counter("gwx_worker_events_redelivered_total",
                                 "Client events that reached this worker as redeliveries.")
                     .with();
  failures_ =
      reg.add_counter("gwx_worker_handler_failures_total", "Handler calls that threw an exception.")
          .with();
  rejected_ = reg.add_counter("gwx_worker_upgrades_rejected_total",
                              "WebSocket upgrades the handler refused.")
                  .with();
  message_seconds_ = reg.add_histogram("gwx_worker_message_handler_seconds",
                                       "Time on_message took.", metrics::latency_buckets())
                         .with();
}

template <typename F>
auto metered_handler::guarded(F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (...) {
    failures_.inc();
    throw;
  }
}

void metered_handler::count(context& ctx, const metrics::counter& kind) {
  kind.inc();
  if (ctx.redelivered()) {
    redelivered_.inc();
  }
}

void metered_handler::on_connect(context& ctx) {
  count(ctx, connects_);
  guarded([&] { app_->on_connect(ctx); });
}

connect_decision metered_handler::on_websocket_connect(context& ctx,
                                                       const websocket_request& request) {
  auto decision = guarded([&] { return app_->on_websocket_connect(ctx, request); });
  if (!decision.accepted()) {
    rejected_.inc();
  }
  return decision;
}

void metered_handler::on_message(context& ctx, const message& msg) {
  count(ctx, messages_);
  const auto start = std::chrono::steady_clock::now();
  guarded([&] { app_->on_message(ctx, msg); });
  message_seconds_.observe(std::chrono::steady_clock::now() - start);
}

void metered_handler::on_close(context& ctx) {
  count(ctx, closes_);
  guarded([&] { app_->on_close(ctx); });
}

}  // namespace gwx::sdk
