#pragma once

#include <memory>

#include "common/metrics/counter.hpp"
#include "common/metrics/histogram.hpp"
#include "worker/sdk/handler.hpp"

namespace gwx::metrics {
class registry;
}

namespace gwx::sdk {

/// Wraps an app and counts what it handles: events by kind, redeliveries, handler failures and
/// the time on_message takes. Lock-free per event (handles resolved once). Thread-safety as the
/// wrapped app's.
class metered_handler final : public handler {
 public:
  metered_handler(std::unique_ptr<handler> app, metrics::registry& reg);

  void on_worker_start(gateway_api& api) override { app_->on_worker_start(api); }
  void on_connect(context& ctx) override;
  connect_decision on_websocket_connect(context& ctx, const websocket_request& request) override;
  void on_message(context& ctx, const message& msg) override;
  void on_close(context& ctx) override;
  void on_worker_stop(gateway_api& api) override { app_->on_worker_stop(api); }

 private:
  void count(context& ctx, const metrics::counter& kind);
  template <typename F>
  auto guarded(F&& f) -> decltype(f());

  std::unique_ptr<handler> app_;
  metrics::counter connects_;
  metrics::counter messages_;
  metrics::counter closes_;
  metrics::counter redelivered_;
  metrics::counter failures_;
  metrics::counter rejected_;
  metrics::histogram message_seconds_;
};

}  // namespace gwx::sdk
