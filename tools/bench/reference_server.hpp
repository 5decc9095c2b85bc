#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "tools/bench/target_url.hpp"

namespace gwx::bench {

/// What the reference server serves on each listener.
enum class reference_role { echo, broadcast };

/// One listener of the reference server.
struct reference_listener {
  reference_role role = reference_role::echo;
  target_url url;  ///< port 0 picks a free port
};

/// The relay limit on this machine: a single-threaded epoll server built from the project's
/// codecs, as a good single-process server would be written: level-triggered epoll, one shared
/// read buffer (an idle connection owns no buffer), replies of a whole read encoded into one
/// buffer and written at once with no copy unless the socket is full, a broadcast encoded once
/// per read and its buffer shared by every recipient that cannot take it at once. Echo replies
/// are sent back as received (WebSocket text as text, binary as binary); a broadcast goes to
/// every client of its listener, the sender included. WebSocket pings are answered, a close is
/// answered and the connection closed. Not thread-safe: run() on one thread.
class reference_server {
 public:
  /// Binds every listener. Throws std::runtime_error (address in use, bad address…).
  reference_server(const std::vector<reference_listener>& listeners, std::size_t max_message);
  ~reference_server();
  reference_server(const reference_server&) = delete;
  reference_server& operator=(const reference_server&) = delete;

  /// "echo URL" / "broadcast URL" with the bound ports, in the order given.
  std::vector<std::string> bound() const;

  /// Serves until SIGINT or SIGTERM (which it blocks and takes through a signalfd).
  void run();

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace gwx::bench
