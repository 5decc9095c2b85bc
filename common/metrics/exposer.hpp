#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "common/net/endpoint.hpp"

namespace gwx::metrics {

class registry;

/// Limits of the metrics HTTP endpoint.
struct exposer_options {
  /// Largest request head (request line and headers) read; more gets 431.
  std::size_t max_request_head = 8192;
  /// Time a connection may take from accept to the end of the answer; then it is closed.
  std::chrono::milliseconds timeout{10000};
  /// Connections served at once. A new connection beyond it takes the place of the oldest one
  /// that is not being answered (still sending its request, or idle), so idle sockets can never
  /// keep a scrape out; if every connection is being answered, the new one is closed.
  std::size_t max_connections = 32;
  /// Pause before accepting again after an accept error (out of descriptors, say).
  std::chrono::milliseconds accept_retry{100};
  /// Accept errors are logged at most once per interval, with the count so far.
  std::chrono::milliseconds accept_error_log_interval{10000};
};

/// Serves a registry over HTTP on its own thread: `GET /metrics` (and HEAD) answers 200 with
/// the text exposition format 0.0.4; any other path 404; another method on /metrics 405; a
/// malformed request 400 (431 when too large, 505 for another HTTP version). One request per
/// connection (`Connection: close`), each connection bounded by the options. The body is
/// registry::expose(): prometheus-cpp's TextSerializer over the registry's families.
///
/// Thread-safety: construct and stop from one thread; port() and address() from any. Scrapes
/// run on the exposer's thread, where callback metrics are read.
class exposer {
 public:
  /// Binds `listen` (a host name or an IP address; port 0 picks a free port) and starts the
  /// thread. Throws std::runtime_error with a one-line reason when it cannot listen.
  exposer(registry& reg, const host_port& listen, exposer_options options = {});
  /// Stops and joins.
  ~exposer();
  exposer(const exposer&) = delete;
  exposer& operator=(const exposer&) = delete;

  /// Closes the listener and every connection, joins the thread. Idempotent.
  void stop();

  /// The port actually bound.
  std::uint16_t port() const;

  /// "host:port" actually bound (IPv6 in brackets), for the `listening metrics://` line.
  std::string address() const;

  /// Accept errors since start (each retry that fails counts).
  std::uint64_t accept_errors() const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace gwx::metrics
