#include "gateway/refused_connection.hpp"

#include "common/codec/ws_handshake.hpp"

namespace gwx::gateway {

void refused_connection::start(asio::ip::tcp::socket socket, bool http_answer,
                               std::chrono::milliseconds linger,
                               std::shared_ptr<std::atomic<std::size_t>> lingering,
                               std::size_t max_lingering) {
  if (lingering->fetch_add(1, std::memory_order_relaxed) >= max_lingering) {
    lingering->fetch_sub(1, std::memory_order_relaxed);
    std::error_code ignored;
    socket.close(ignored);
    return;
  }
  std::make_shared<refused_connection>(std::move(socket), std::move(lingering))
      ->run(http_answer, linger);
}

refused_connection::refused_connection(asio::ip::tcp::socket socket,
                                       std::shared_ptr<std::atomic<std::size_t>> lingering)
    : socket_(std::move(socket)),
      timer_(socket_.get_executor()),
      lingering_(std::move(lingering)) {}

refused_connection::~refused_connection() {
  lingering_->fetch_sub(1, std::memory_order_relaxed);
}

void refused_connection::run(bool http_answer, std::chrono::milliseconds linger) {
  timer_.expires_after(linger);
  timer_.async_wait([self = shared_from_this()](std::error_code ec) {
    if (!ec) {
      self->close();
    }
  });
  if (!http_answer) {
    half_close();
    return;
  }
  answer_ = std::make_shared<const std::string>(
      codec::ws::make_error_response(503, "too many connections on this listener"));
  asio::async_write(socket_, asio::buffer(*answer_),
                    [self = shared_from_this()](std::error_code ec, std::size_t) {
                      if (ec) {
                        self->close();
                        return;
                      }
                      self->half_close();
                    });
}

void refused_connection::half_close() {
  std::error_code ec;
  socket_.shutdown(asio::ip::tcp::socket::shutdown_send, ec);
  if (ec) {
    close();
    return;
  }
  discard();
}

void refused_connection::discard() {
  socket_.async_read_some(asio::buffer(sink_),
                          [self = shared_from_this()](std::error_code ec, std::size_t) {
                            if (ec) {
                              self->close();  // EOF: the client closed too
                              return;
                            }
                            self->discard();
                          });
}

void refused_connection::close() {
  std::error_code ignored;
  timer_.cancel();
  socket_.close(ignored);
}

}  // namespace gwx::gateway
