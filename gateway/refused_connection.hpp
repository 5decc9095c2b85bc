#pragma once

#include <array>
#include <asio.hpp>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

namespace gwx::gateway {

/// Says "no" to a connection that came in over a listener's max_connections, without a reset.
///
/// WebSocket listeners answer `503 Service Unavailable` (Connection: close), TCP listeners send
/// nothing; then the gateway closes its side (FIN) and reads and discards whatever the client
/// still sends until it closes too or `linger` passes. Closing at once with the client's upgrade
/// request unread would make the kernel send a reset, which can destroy the answer before the
/// client reads it. At most `max_lingering` refusals (counted in `lingering`, shared by every
/// listener) linger at a time; past that a refusal is a plain close, so a flood of refused
/// connections costs a bounded amount. Runs on the socket's loop and keeps itself alive.
class refused_connection final : public std::enable_shared_from_this<refused_connection> {
 public:
  /// Starts the refusal of `socket`; call on (or post to) the socket's loop.
  static void start(asio::ip::tcp::socket socket, bool http_answer,
                    std::chrono::milliseconds linger,
                    std::shared_ptr<std::atomic<std::size_t>> lingering, std::size_t max_lingering);

  refused_connection(asio::ip::tcp::socket socket,
                     std::shared_ptr<std::atomic<std::size_t>> lingering);
  ~refused_connection();
  refused_connection(const refused_connection&) = delete;
  refused_connection& operator=(const refused_connection&) = delete;

 private:
  void run(bool http_answer, std::chrono::milliseconds linger);
  void half_close();
  void discard();
  void close();

  asio::ip::tcp::socket socket_;
  asio::steady_timer timer_;
  std::shared_ptr<std::atomic<std::size_t>> lingering_;
  std::shared_ptr<const std::string> answer_;
  std::array<char, 1024> sink_{};
};

}  // namespace gwx::gateway
