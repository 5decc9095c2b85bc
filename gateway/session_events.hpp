#pragma once

#include <string>
#include <string_view>

#include "gateway/close_cause.hpp"

namespace gwx::codec::ws {
struct http_request;
}

namespace gwx::gateway {

class client_record;

/// What a client connection reports upward (to its loop's shard). Called on the client's loop.
class session_events {
 public:
  /// The client is connected (TCP) or upgraded (WebSocket; with `decision_required` the
  /// upgrade waits for a worker's answer). `request` is null for TCP listeners.
  virtual void on_connected(client_record& c, const codec::ws::http_request* request,
                            bool decision_required) = 0;
  /// One complete message from the client.
  virtual void on_message(client_record& c, std::string_view payload, bool binary) = 0;
  /// The connection is closed (`cause` for the metrics, `reason` for people and the worker);
  /// the session makes no further calls.
  virtual void on_closed(client_record& c, close_cause cause, const std::string& reason) = 0;

 protected:
  ~session_events() = default;
};

}  // namespace gwx::gateway
