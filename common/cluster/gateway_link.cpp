#include "common/cluster/gateway_link.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>

#include "common/client_id.hpp"
#include "common/net/endpoint.hpp"

namespace gwx::cluster {
namespace {

std::atomic<std::uint64_t> g_next_serial{1};

}  // namespace

gateway_link::gateway_link(asio::io_context& io, registry::gateway_entry entry,
                           std::shared_ptr<const link_settings> settings, callbacks cb)
    : io_(io),
      entry_(std::move(entry)),
      settings_(std::move(settings)),
      cb_(std::move(cb)),
      resolver_(io),
      timer_(io),
      backoff_(settings_->backoff_initial, settings_->backoff_max),
      address_(entry_.internal_address) {}

void gateway_link::start() {
  if (state_ == state::idle) {
    connect();
  }
}

void gateway_link::stop() {
  if (state_ == state::stopped) {
    return;
  }
  const bool was_up = state_ == state::up;
  state_ = state::stopped;
  timer_.cancel();
  resolver_.cancel();
  if (connecting_) {
    std::error_code ignored;
    connecting_->close(ignored);
    connecting_.reset();
  }
  if (stream_) {
    stream_->close("peer stopping");
    stream_.reset();
  }
  if (was_up) {
    spdlog::info("link to gateway {} ({}) closed", address_, entry_.gateway_id);
  }
}

net::send_status gateway_link::send(const link::v2::Frame& frame, std::string_view payload) {
  if (state_ != state::up) {
    return net::send_status::dropped;
  }
  // A send past the cap closes the stream from inside it: keep it alive until it returns.
  const auto stream = stream_;
  sending_ = true;
  const auto status = stream->send(frame, payload);
  sending_ = false;
  return status;
}

void gateway_link::send_to_client(std::string_view client_id, bool binary,
                                  std::string_view payload) {
  if (state_ != state::up) {
    return;
  }
  const auto stream = stream_;
  sending_ = true;
  stream->send_to_client(client_id, binary, payload);
  sending_ = false;
}

void gateway_link::hold_events(bool hold) {
  hold_ = hold;
  apply_hold();
}

void gateway_link::request_sent() {
  ++requests_;
  apply_hold();
}

void gateway_link::request_ended(std::uint64_t serial) {
  if (serial != serial_ || requests_ == 0) {
    return;  // a request of an earlier link: the count started again when this one came up
  }
  --requests_;
  apply_hold();
}

void gateway_link::apply_hold() {
  if (state_ == state::up && stream_) {
    stream_->pause_reading(hold_ && requests_ == 0);
  }
}

std::size_t gateway_link::queued_bytes() const {
  return stream_ ? stream_->queued_bytes() : 0;
}

void gateway_link::connect() {
  state_ = state::connecting;
  handshake_.reset();
  const auto attempt = ++attempt_;
  host_port target;
  try {
    target = parse_host_port(entry_.internal_address);
  } catch (const std::exception& e) {
    fail(e.what());
    return;
  }
  // One deadline covers resolve, connect and handshake.
  timer_.expires_after(settings_->handshake_timeout);
  timer_.async_wait([weak = weak_from_this(), attempt](std::error_code ec) {
    auto self = weak.lock();
    if (ec || !self || self->attempt_ != attempt) {
      return;
    }
    if (self->state_ == state::connecting || self->state_ == state::handshaking) {
      self->fail("no welcome within " + std::to_string(self->settings_->handshake_timeout.count()) +
                 " ms");
    }
  });
  resolver_.async_resolve(
      target.host, std::to_string(target.port),
      [weak = weak_from_this(), attempt](std::error_code ec,
                                         asio::ip::tcp::resolver::results_type results) {
        auto self = weak.lock();
        if (!self || self->attempt_ != attempt || self->state_ != state::connecting) {
          return;
        }
        if (ec) {
          self->fail("cannot resolve: " + ec.message());
          return;
        }
        self->connecting_ = std::make_shared<asio::ip::tcp::socket>(self->io_);
        asio::async_connect(
            *self->connecting_, results,
            [weak, attempt, socket = self->connecting_](std::error_code ec,
                                                        const asio::ip::tcp::endpoint&) {
              auto self = weak.lock();
              if (!self || self->attempt_ != attempt || self->state_ != state::connecting) {
                return;
              }
              self->connecting_.reset();
              if (ec) {
                self->fail("cannot connect: " + ec.message());
                return;
              }
              self->on_connected(std::move(*socket));
            });
      });
}

void gateway_link::on_connected(asio::ip::tcp::socket socket) {
  state_ = state::handshaking;
  handshake_.emplace(settings_->secret, settings_->role, settings_->name, entry_.gateway_id);
  net::ssl_ptr ssl;
  if (settings_->tls) {
    ssl = settings_->tls->new_ssl();
    if (!ssl) {
      fail("cannot create a TLS connection: " + net::take_openssl_error());
      return;
    }
  }
  stream_ = std::make_shared<link_stream>(std::move(socket), settings_->max_frame,
                                          settings_->send_cap, std::move(ssl));
  const auto attempt = attempt_;
  stream_->start(
      [weak = weak_from_this(), attempt](link::v2::Frame& frame, std::string_view payload) {
        auto self = weak.lock();
        if (!self || self->attempt_ != attempt) {
          return;
        }
        if (self->state_ == state::up) {
          if (self->cb_.on_frame) {
            self->cb_.on_frame(*self, frame, payload);
          }
        } else if (self->state_ == state::handshaking) {
          self->on_handshake_frame(frame);
        }
      },
      [weak = weak_from_this(), attempt](const std::string& reason) {
        auto self = weak.lock();
        if (self && self->attempt_ == attempt) {
          self->on_stream_closed(reason);
        }
      });
}

void gateway_link::on_handshake_frame(link::v2::Frame& frame) {
  auto step = handshake_->on_frame(frame);
  if (step.reply) {
    stream_->send(*step.reply);
  }
  if (step.result == link_handshake::step::outcome::failed) {
    fail(step.reason);
    return;
  }
  if (step.result == link_handshake::step::outcome::pending) {
    return;
  }
  address_ = handshake_->gateway_address().empty() ? entry_.internal_address
                                                   : handshake_->gateway_address();
  redelivers_ = handshake_->gateway_redelivers();
  handshake_.reset();
  id_prefix_.clear();
  try {
    const auto hp = parse_host_port(address_);
    id_prefix_ = client_id_prefix(hp.host, hp.port, std::stoull(entry_.gateway_id, nullptr, 16));
  } catch (const std::exception&) {
    // Not an address ids are made of: commands for its clients find no link (they are offline).
  }
  state_ = state::up;
  serial_ = g_next_serial.fetch_add(1, std::memory_order_relaxed);
  ref_ = link_ref{entry_.gateway_id, serial_};
  clients_.clear();
  requests_ = 0;
  timer_.cancel();
  stream_->authenticated();
  stream_->enable_keepalive(settings_->keepalive_interval, settings_->keepalive_timeout);
  // Held before the link came up (the owner still holds too many events): read nothing more
  // than the frames of this read until it has room.
  apply_hold();
  failures_ = 0;
  warned_failures_.clear();
  backoff_.reset();
  spdlog::info("link to gateway {} ({}) up", address_, entry_.gateway_id);
  if (cb_.on_up) {
    cb_.on_up(*this);
  }
}

void gateway_link::on_stream_closed(const std::string& reason) {
  if (state_ == state::up) {
    state_ = state::waiting;
    stream_.reset();
    clients_.clear();
    spdlog::warn("link to gateway {} ({}) down: {}", address_, entry_.gateway_id, reason);
    if (sending_) {
      // Our own send() cut the link (the gateway stopped reading): its caller may be walking
      // its links and must not see one vanish under it. Report once the send has returned;
      // until then the link is simply not up.
      const auto attempt = ++attempt_;
      asio::post(io_, [weak = weak_from_this(), attempt, reason] {
        auto self = weak.lock();
        if (self && self->attempt_ == attempt) {
          self->report_down(reason);
        }
      });
      return;
    }
    report_down(reason);
    return;
  }
  if (state_ == state::handshaking) {
    fail(reason);
  }
}

void gateway_link::report_down(const std::string& reason) {
  if (cb_.on_down) {
    cb_.on_down(*this, reason);
  }
  retry_later();
}

void gateway_link::fail(const std::string& reason) {
  if (state_ == state::stopped) {
    return;
  }
  // Quiet repeats: each reason is worth one warning per streak of failures (the first few).
  constexpr std::size_t k_max_warned = 4;
  if (warned_failures_.size() < k_max_warned &&
      std::find(warned_failures_.begin(), warned_failures_.end(), reason) ==
          warned_failures_.end()) {
    warned_failures_.push_back(reason);
    spdlog::warn("link to gateway {} ({}) failed: {}; retrying", entry_.internal_address,
                 entry_.gateway_id, reason);
  } else {
    spdlog::debug("link to gateway {} ({}) failed again: {}", entry_.internal_address,
                  entry_.gateway_id, reason);
  }
  ++failures_;
  state_ = state::waiting;
  ++attempt_;
  if (connecting_) {
    std::error_code ignored;
    connecting_->close(ignored);
    connecting_.reset();
  }
  if (stream_) {
    stream_->close(reason);
    stream_.reset();
  }
  retry_later();
}

void gateway_link::retry_later() {
  if (state_ == state::stopped) {
    return;
  }
  state_ = state::waiting;
  const auto attempt = ++attempt_;
  timer_.expires_after(backoff_.next());
  timer_.async_wait([weak = weak_from_this(), attempt](std::error_code ec) {
    auto self = weak.lock();
    if (!ec && self && self->attempt_ == attempt && self->state_ == state::waiting) {
      self->connect();
    }
  });
}

}  // namespace gwx::cluster
