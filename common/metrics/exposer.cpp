#include "common/metrics/exposer.hpp"

#include <spdlog/spdlog.h>

#include <array>
#include <asio.hpp>
#include <atomic>
#include <list>
#include <stdexcept>
#include <thread>

#include "common/metrics/http_codec.hpp"
#include "common/metrics/registry.hpp"

namespace gwx::metrics {
namespace {

using tcp = asio::ip::tcp;

constexpr std::size_t k_read_chunk = 2048;
// After answering, what a client may still send (say, a body nobody reads) before we close.
constexpr std::size_t k_max_drain = 65536;
// The Content-Type of the text exposition format prometheus-cpp's TextSerializer writes.
constexpr std::string_view k_text_content_type = "text/plain; version=0.0.4; charset=utf-8";
constexpr std::string_view k_plain = "text/plain; charset=utf-8";

tcp::endpoint resolve(asio::io_context& io, const host_port& listen) {
  std::error_code ec;
  const auto address = asio::ip::make_address(listen.host, ec);
  if (!ec) {
    return {address, listen.port};
  }
  tcp::resolver resolver(io);
  const auto results = resolver.resolve(listen.host, std::to_string(listen.port), ec);
  if (ec || results.empty()) {
    throw std::runtime_error("cannot resolve metrics host '" + listen.host + "'");
  }
  return results.begin()->endpoint();
}

}  // namespace

struct exposer::impl {
  class connection;

  impl(registry& reg, exposer_options opts) : metrics(reg), options(opts) {}

  void accept();
  void on_accept_error(std::error_code ec);
  // Makes room for one more connection; false when every open one is being answered.
  bool make_room();
  std::string answer(const http_request_head& head);

  registry& metrics;
  const exposer_options options;
  // Touched on the exposer thread only. Declared before io so that connections destroyed with
  // io's pending handlers can still take themselves out.
  std::list<connection*> open;  // oldest first; a connection leaves it when it closes
  std::size_t last_body_size = 4096;
  std::chrono::steady_clock::time_point last_accept_log;
  std::atomic<std::uint64_t> accept_errors{0};
  asio::io_context io;
  tcp::acceptor acceptor{io};
  asio::steady_timer accept_retry{io};
  std::uint16_t port = 0;
  std::string address;
  std::thread thread;
  bool stopped = false;
};

// One request and its answer: read the head (bounded by size and time), answer, half-close,
// read what the client still sends until it closes (so that it gets the whole answer rather
// than a reset), close. The timer bounds all of it.
class exposer::impl::connection : public std::enable_shared_from_this<connection> {
 public:
  connection(impl& owner, tcp::socket socket)
      : owner_(owner),
        socket_(std::move(socket)),
        deadline_(owner.io),
        position_(owner.open.insert(owner.open.end(), this)) {}
  ~connection() { unlist(); }
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;

  /// Whether an answer is being written (the only state in which it is not evicted for a
  /// newcomer: it has a real client, and the deadline bounds it).
  bool answering() const { return answering_; }

  /// Closes the socket; pending operations end with operation_aborted and release the object.
  void close() {
    std::error_code ignored;
    deadline_.cancel();
    socket_.close(ignored);
    unlist();
  }

  void start() {
    deadline_.expires_after(owner_.options.timeout);
    deadline_.async_wait([self = shared_from_this()](std::error_code ec) {
      if (!ec) {
        self->close();
      }
    });
    read();
  }

 private:
  void read() {
    socket_.async_read_some(
        asio::buffer(chunk_),
        [self = shared_from_this()](std::error_code ec, std::size_t n) { self->on_read(ec, n); });
  }

  void on_read(std::error_code ec, std::size_t n) {
    if (ec) {
      close();
      return;
    }
    request_.append(chunk_.data(), n);
    const auto parsed = parse_request_head(request_, owner_.options.max_request_head);
    switch (parsed.state) {
      case http_parse_result::status::need_more:
        read();
        return;
      case http_parse_result::status::error:
        spdlog::debug("metrics: bad request from {}: {}", peer(), parsed.error);
        respond(make_http_response(parsed.error_status, k_plain, std::string(parsed.error) + "\n",
                                   true));
        return;
      case http_parse_result::status::complete:
        respond(owner_.answer(parsed.head));
        return;
    }
  }

  void respond(std::string response) {
    response_ = std::move(response);
    answering_ = true;
    asio::async_write(socket_, asio::buffer(response_),
                      [self = shared_from_this()](std::error_code ec, std::size_t) {
                        self->answering_ = false;
                        if (ec) {
                          self->close();
                          return;
                        }
                        std::error_code ignored;
                        self->socket_.shutdown(tcp::socket::shutdown_send, ignored);
                        self->drain();
                      });
  }

  void drain() {
    socket_.async_read_some(asio::buffer(chunk_),
                            [self = shared_from_this()](std::error_code ec, std::size_t n) {
                              self->drained_ += n;
                              if (ec || self->drained_ > k_max_drain) {
                                self->close();
                              } else {
                                self->drain();
                              }
                            });
  }

  void unlist() {
    if (listed_) {
      owner_.open.erase(position_);
      listed_ = false;
    }
  }

  std::string peer() const {
    std::error_code ec;
    const auto endpoint = socket_.remote_endpoint(ec);
    return ec ? std::string("?")
              : format_host_port(endpoint.address().to_string(), endpoint.port());
  }

  impl& owner_;
  tcp::socket socket_;
  asio::steady_timer deadline_;
  std::array<char, k_read_chunk> chunk_{};
  std::string request_;
  std::string response_;
  std::size_t drained_ = 0;
  bool answering_ = false;
  std::list<connection*>::iterator position_;
  bool listed_ = true;
};

void exposer::impl::accept() {
  acceptor.async_accept([this](std::error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted) {
      return;
    }
    if (ec) {
      on_accept_error(ec);
      return;
    }
    if (make_room()) {
      std::make_shared<connection>(*this, std::move(socket))->start();
    } else {
      std::error_code ignored;
      socket.close(ignored);
    }
    accept();
  });
}

void exposer::impl::on_accept_error(std::error_code ec) {
  // Out of descriptors makes every retry fail until one is freed: pause rather than spin, and
  // log one line per interval with the count rather than one per retry.
  const auto errors = accept_errors.fetch_add(1, std::memory_order_relaxed) + 1;
  const auto now = std::chrono::steady_clock::now();
  if (errors == 1 || now - last_accept_log >= options.accept_error_log_interval) {
    spdlog::warn("metrics: accept failed: {} ({} accept error(s) so far)", ec.message(), errors);
    last_accept_log = now;
  }
  accept_retry.expires_after(options.accept_retry);
  accept_retry.async_wait([this](std::error_code wait_ec) {
    if (!wait_ec) {
      accept();
    }
  });
}

bool exposer::impl::make_room() {
  if (open.size() < options.max_connections) {
    return true;
  }
  // Connections that have not sent a whole request (or already have their answer) are cheap to
  // drop and may be idle on purpose: the oldest of them gives way, so a crowd of idle sockets
  // cannot keep a scrape waiting for their deadlines.
  for (auto* candidate : open) {
    if (!candidate->answering()) {
      spdlog::debug("metrics: {} connections open, closing the oldest one not being answered",
                    open.size());
      candidate->close();  // leaves `open`; the loop ends here
      return true;
    }
  }
  return false;
}

std::string exposer::impl::answer(const http_request_head& head) {
  if (head.path != "/metrics") {
    return make_http_response(404, k_plain, "not found: metrics are served at /metrics\n",
                              head.method != "HEAD");
  }
  if (head.method != "GET" && head.method != "HEAD") {
    return make_http_response(405, k_plain, "only GET and HEAD are allowed on /metrics\n", true,
                              "Allow: GET, HEAD\r\n");
  }
  std::string body;
  body.reserve(last_body_size + last_body_size / 4);
  metrics.expose(body);
  last_body_size = body.size();
  return make_http_response(200, k_text_content_type, body, head.method == "GET");
}

exposer::exposer(registry& reg, const host_port& listen, exposer_options options)
    : impl_(std::make_unique<impl>(reg, options)) {
  auto& self = *impl_;
  const auto endpoint = resolve(self.io, listen);
  std::error_code ec;
  self.acceptor.open(endpoint.protocol(), ec);
  if (!ec) {
    self.acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  }
  if (!ec) {
    self.acceptor.bind(endpoint, ec);
  }
  if (!ec) {
    self.acceptor.listen(asio::socket_base::max_listen_connections, ec);
  }
  if (ec) {
    throw std::runtime_error("cannot listen for metrics on " + listen.to_string() + ": " +
                             ec.message());
  }
  const auto bound = self.acceptor.local_endpoint();
  self.port = bound.port();
  self.address = format_host_port(bound.address().to_string(), bound.port());
  self.accept();
  self.thread = std::thread([&self] { self.io.run(); });
}

exposer::~exposer() {
  stop();
}

void exposer::stop() {
  if (impl_->stopped) {
    return;
  }
  impl_->stopped = true;
  impl_->io.stop();
  if (impl_->thread.joinable()) {
    impl_->thread.join();
  }
  std::error_code ignored;
  impl_->acceptor.close(ignored);
}

std::uint16_t exposer::port() const {
  return impl_->port;
}

std::string exposer::address() const {
  return impl_->address;
}

std::uint64_t exposer::accept_errors() const {
  return impl_->accept_errors.load(std::memory_order_relaxed);
}

}  // namespace gwx::metrics
