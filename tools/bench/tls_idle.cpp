#include "tools/bench/tls_idle.hpp"

#include <asio.hpp>
#include <memory>
#include <vector>

#include "common/net/tls_context.hpp"
#include "common/net/tls_io.hpp"
#include "tools/bench/wire.hpp"

namespace gwx::bench {
namespace {

// Connections being opened at once: enough to be quick, few enough not to overflow the
// server's accept backlog.
constexpr std::size_t k_parallel_opens = 64;

struct tally {
  std::size_t opened = 0;
  std::size_t failed = 0;
  std::string first_error;
};

/// One idle TLS client: connect, handshake, (wss) upgrade, then nothing.
class tls_client : public std::enable_shared_from_this<tls_client> {
 public:
  tls_client(asio::io_context& io, const target_url& url, const net::tls_context& ctx,
             std::uint64_t seed, tally& t, std::function<void()> done)
      : socket_(io), url_(url), ctx_(ctx), seed_(seed), tally_(t), done_(std::move(done)) {}

  void start(const asio::ip::tcp::endpoint& ep) {
    socket_.async_connect(ep, [self = shared_from_this()](std::error_code ec) {
      if (ec) {
        self->fail("connect: " + ec.message());
        return;
      }
      std::error_code ignored;
      self->socket_.non_blocking(true, ignored);
      auto ssl = self->ctx_.new_ssl();
      // The benchmark's own server, whatever certificate it has: memory is measured, not trust.
      SSL_set_verify(ssl.get(), SSL_VERIFY_NONE, nullptr);
      self->tls_ = std::make_unique<net::tls_io>(std::move(ssl), self->socket_.native_handle());
      self->step();
    });
  }

  void close() {
    std::error_code ignored;
    socket_.close(ignored);
  }

 private:
  void wait(net::tls_status st) {
    socket_.async_wait(st == net::tls_status::want_write ? asio::ip::tcp::socket::wait_write
                                                         : asio::ip::tcp::socket::wait_read,
                       [self = shared_from_this()](std::error_code ec) {
                         if (ec) {
                           self->fail(ec.message());
                           return;
                         }
                         self->step();
                       });
  }

  void step() {
    if (!tls_->established()) {
      const auto st = tls_->handshake();
      if (st != net::tls_status::ok) {
        if (st == net::tls_status::want_read || st == net::tls_status::want_write) {
          wait(st);
        } else {
          fail("TLS handshake: " + tls_->failure_detail());
        }
        return;
      }
      if (url_.proto != protocol::ws) {
        succeed();
        return;
      }
      request_ = make_upgrade_request(url_, seed_, key_);
      bufs_ = {asio::buffer(request_)};
    }
    if (!bufs_.empty()) {
      const auto st = tls_->write(bufs_);
      if (st == net::tls_status::want_read || st == net::tls_status::want_write) {
        wait(st);
        return;
      }
      if (st != net::tls_status::ok) {
        fail("sending the upgrade: " + tls_->failure_detail());
        return;
      }
      bufs_.clear();
      std::string().swap(request_);
    }
    char buf[4096];
    for (;;) {
      std::size_t n = 0;
      const auto st = tls_->read(buf, sizeof(buf), n);
      if (st == net::tls_status::want_read || st == net::tls_status::want_write) {
        wait(st);
        return;
      }
      if (st != net::tls_status::ok) {
        fail("reading the upgrade answer: connection closed");
        return;
      }
      response_.append(buf, n);
      try {
        if (check_upgrade_response(response_, key_) > 0) {
          std::string().swap(response_);
          succeed();
          return;
        }
      } catch (const std::exception& e) {
        fail(e.what());
        return;
      }
    }
  }

  void succeed() {
    ++tally_.opened;
    done_();
  }

  void fail(const std::string& why) {
    ++tally_.failed;
    if (tally_.first_error.empty()) {
      tally_.first_error = why;
    }
    close();
    done_();
  }

  asio::ip::tcp::socket socket_;
  const target_url& url_;
  const net::tls_context& ctx_;
  std::uint64_t seed_;
  tally& tally_;
  std::function<void()> done_;
  std::unique_ptr<net::tls_io> tls_;
  std::string request_;
  std::string key_;
  std::string response_;
  std::vector<asio::const_buffer> bufs_;
};

}  // namespace

void hold_tls_idle(
    const load_options& opt,
    const std::function<void(std::size_t, std::size_t, const std::string&)>& keep_open) {
  asio::io_context io;
  net::tls_client_config cfg;
  if (opt.url.proto == protocol::ws) {
    cfg.alpn = {"http/1.1"};
  }
  // No CA file: the system's are loaded, but verification is off per connection (above).
  const auto ctx = net::tls_context::make_client(cfg);
  const asio::ip::tcp::endpoint ep(asio::ip::make_address(opt.url.host), opt.url.port);
  tally t;
  std::vector<std::shared_ptr<tls_client>> clients;
  clients.reserve(opt.connections);
  std::size_t started = 0;
  std::function<void()> next = [&] {
    while (started < opt.connections && started - (t.opened + t.failed) < k_parallel_opens) {
      auto c = std::make_shared<tls_client>(io, opt.url, *ctx, started + 1, t, [&] { next(); });
      clients.push_back(c);
      ++started;
      c->start(ep);
    }
  };
  next();
  io.run_for(std::chrono::milliseconds(static_cast<long>(opt.open_timeout_s * 1000)));
  if (t.opened + t.failed < opt.connections) {
    t.failed = opt.connections - t.opened;
    if (t.first_error.empty()) {
      t.first_error = "not all connections opened within --open-timeout";
    }
  }
  keep_open(t.opened, t.failed, t.first_error);
  for (auto& c : clients) {
    c->close();
  }
}

}  // namespace gwx::bench
