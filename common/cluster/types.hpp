#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace gwx {

/// One message to or from a client: text (UTF-8) or binary. A plain value; thread-compatible.
struct message {
  std::string data;
  bool binary = false;

  message() = default;
  /// A text message (implicit, so `send_to_client(id, "hi")` reads naturally).
  message(std::string text) : data(std::move(text)) {}  // NOLINT(google-explicit-constructor)
  /// A text message.
  message(const char* text) : data(text) {}  // NOLINT(google-explicit-constructor)
  /// A text or binary message.
  message(std::string bytes, bool is_binary) : data(std::move(bytes)), binary(is_binary) {}

  /// A text message.
  static message text(std::string data) { return {std::move(data), false}; }
  /// A binary message.
  static message bytes(std::string data) { return {std::move(data), true}; }

  bool operator==(const message&) const = default;
};

/// A client's session: string keys and values, kept by the gateway, sorted by key.
using session_map = std::map<std::string, std::string>;

/// The answer of a query: the merged value of every gateway that answered, the gateways that
/// did not (down, slow, or answering with an error), and an error when the query could not run
/// at all. A value type; thread-compatible.
template <typename T>
struct result {
  T value{};
  /// Internal addresses of the gateways that did not answer in time, or answered with an error
  /// (e.g. an answer over the link's 64 MiB frame limit, which a gateway refuses to send).
  std::vector<std::string> missing_gateways;
  /// Set when the query did not run (see gwx::api_errc); `value` is then empty.
  std::error_code error;

  /// True when every gateway answered and nothing failed.
  bool complete() const { return !error && missing_gateways.empty(); }
};

/// What one gateway reports about itself (QUERY_KIND_STATS).
/// A worker linked to a gateway, as that gateway sees it.
struct worker_link_stats {
  std::string name;     ///< the worker's --name
  std::string address;  ///< the worker's end of the link, host:port
  bool draining = false;
  std::uint64_t clients = 0;  ///< clients of this gateway whose events go to it
  std::uint64_t events_in_flight = 0;
};

struct gateway_stats {
  std::string gateway_id;
  std::string internal_address;
  std::uint64_t clients = 0;
  std::uint64_t groups = 0;
  std::uint64_t uids = 0;
  std::vector<std::string> workers;
  std::vector<std::string> listeners;
  std::uint64_t messages_in = 0;
  std::uint64_t messages_out = 0;
  std::uint32_t threads = 0;
  /// Client events waiting for a worker.
  std::uint64_t events_queued = 0;
  /// Sent to a worker and not yet acknowledged.
  std::uint64_t events_in_flight = 0;
  std::uint64_t events_redelivered = 0;
  /// Dropped by the queue policy.
  std::uint64_t events_dropped = 0;
  std::vector<std::string> draining_workers;
  /// Every linked worker, by name.
  std::vector<worker_link_stats> worker_links;
  /// The gateway's push bus subscription (empty mode: none).
  struct bus_state {
    std::string url;   ///< password masked
    std::string mode;  ///< "redis", "amqp-fanout", "amqp-routed"
    bool connected = false;
    std::uint64_t received = 0;
    std::uint64_t applied = 0;
    std::uint64_t rejected = 0;
    std::uint64_t dropped = 0;
    std::uint64_t bindings = 0;
  } bus;
};

/// A gateway the registers list, and whether this process has a live link to it.
struct gateway_status {
  std::string gateway_id;
  std::string internal_address;
  std::vector<std::string> listeners;
  std::string name;
  bool linked = false;
};

/// Why a Gateway API call could not run.
enum class api_errc {
  /// A blocking query was called on the network thread, which must deliver its answer.
  would_deadlock = 1,
  /// The cluster connection is stopped (or not started).
  stopped,
  /// No answer arrived within the timeout, not even an empty one.
  timed_out,
};

/// The error category of gwx::api_errc.
const std::error_category& api_category();

/// Makes a std::error_code from an api_errc.
std::error_code make_error_code(api_errc e);

}  // namespace gwx

template <>
struct std::is_error_code_enum<gwx::api_errc> : std::true_type {};
