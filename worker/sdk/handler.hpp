#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "common/cluster/gateway_api.hpp"
#include "common/cluster/types.hpp"
#include "worker/sdk/context.hpp"

namespace gwx {

/// The HTTP upgrade request of a WebSocket client, as the gateway received it.
struct websocket_request {
  std::string method;
  std::string path;
  /// The raw query string, without '?'.
  std::string query;
  /// Header names in lower case; repeated headers joined with ", ".
  std::map<std::string, std::string> headers;
  /// Parsed from the Cookie header.
  std::map<std::string, std::string> cookies;
  std::string remote_address;
  std::uint16_t remote_port = 0;

  /// The value of header `name` (any case), or empty.
  std::string header(std::string_view name) const;
};

/// Parses a Cookie header ("a=1; b=2") into name/value pairs; malformed parts are skipped.
std::map<std::string, std::string> parse_cookie_header(std::string_view header);

/// The answer of on_websocket_connect: accept the upgrade, or refuse it with an HTTP status.
struct connect_decision {
  /// 0 or 101: accept; anything else: the HTTP status of the refusal.
  std::uint32_t http_status = 101;
  /// Body of a refusal.
  std::string body;

  /// Accepts the upgrade.
  static connect_decision accept() { return {}; }
  /// Refuses the upgrade with `status` (e.g. 401) and `body`.
  static connect_decision reject(std::uint32_t status, std::string body = {}) {
    return {status, std::move(body)};
  }
  bool accepted() const { return http_status == 0 || http_status == 101; }
};

/// A business handler: override the events you need. gwx-worker calls the client events on
/// its handler threads (--threads): events of one client come in order, on one thread, but
/// different clients' events run concurrently when there are several threads, so a handler's
/// own shared state needs its own locking then. on_worker_start and on_worker_stop run on the
/// thread that starts and stops the worker, before the first and after the last event.
class handler {
 public:
  virtual ~handler() = default;

  /// The worker started; `api` is usable (gateways may not be linked yet).
  virtual void on_worker_start(gateway_api& api) { (void)api; }
  /// A client connected (for WebSocket: after the upgrade was accepted).
  virtual void on_connect(context& ctx) { (void)ctx; }
  /// A WebSocket client's upgrade request, before on_connect. Refusing closes the client (with
  /// that HTTP status when its listener waits for the decision); on_connect is not called.
  virtual connect_decision on_websocket_connect(context& ctx, const websocket_request& request) {
    (void)ctx;
    (void)request;
    return connect_decision::accept();
  }
  /// A client sent a message.
  virtual void on_message(context& ctx, const message& msg) {
    (void)ctx;
    (void)msg;
  }
  /// A client is gone; its uid binding and groups are already released, `ctx` carries its last
  /// uid and session.
  virtual void on_close(context& ctx) { (void)ctx; }
  /// The worker is stopping; `api` still reaches the gateways.
  virtual void on_worker_stop(gateway_api& api) { (void)api; }
};

}  // namespace gwx
