#include "common/net/link_stream.hpp"

#include "common/net/endpoint.hpp"

namespace gwx {
namespace {
constexpr std::size_t k_read_chunk = 64 * 1024;
constexpr auto k_close_flush_limit = std::chrono::seconds(2);
}  // namespace

link_stream::link_stream(asio::ip::tcp::socket socket, std::size_t max_frame, std::size_t send_cap)
    : socket_(std::move(socket)),
      timer_(socket_.get_executor()),
      limits_{max_frame, max_frame},
      out_(send_cap) {
  std::error_code ec;
  const auto ep = socket_.remote_endpoint(ec);
  remote_ = ec ? "?" : format_host_port(ep.address().to_string(), ep.port());
  socket_.set_option(asio::ip::tcp::no_delay(true), ec);
  last_heard_ = std::chrono::steady_clock::now();
}

void link_stream::start(frame_handler on_frame, close_handler on_close) {
  on_frame_ = std::move(on_frame);
  on_close_ = std::move(on_close);
  out_.force(link_codec::preamble());
  do_write();
  do_read();
}

void link_stream::authenticated() {
  active_limits_ = limits_;
}

void link_stream::enable_keepalive(std::chrono::milliseconds interval,
                                   std::chrono::milliseconds timeout) {
  ka_interval_ = interval;
  ka_timeout_ = timeout;
  last_heard_ = std::chrono::steady_clock::now();
  if (interval.count() > 0) {
    do_keepalive();
  }
}

void link_stream::do_keepalive() {
  timer_.expires_after(ka_interval_);
  timer_.async_wait([self = shared_from_this()](std::error_code ec) {
    if (ec || !self->open_ || self->closing_) {
      return;
    }
    const auto silent = std::chrono::steady_clock::now() - self->last_heard_;
    if (silent > self->ka_timeout_) {
      self->shutdown(
          "peer silent for " +
          std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(silent).count()) +
          " ms (keepalive)");
      return;
    }
    link::v2::Frame ping;
    ping.mutable_ping()->set_seq(++self->ping_seq_);
    self->send(ping);
    self->do_keepalive();
  });
}

void link_stream::do_read() {
  if (read_len_ == 0 && read_buf_.size() > k_read_chunk) {
    // A large frame came and went: give its memory back.
    std::string().swap(read_buf_);
  }
  if (read_buf_.size() - read_len_ < k_read_chunk / 4) {
    read_buf_.resize(std::max(read_buf_.size() * 2, read_len_ + k_read_chunk));
  }
  socket_.async_read_some(
      asio::buffer(read_buf_.data() + read_len_, read_buf_.size() - read_len_),
      [self = shared_from_this()](std::error_code ec, std::size_t n) {
        if (ec) {
          self->shutdown(ec == asio::error::eof ? "peer closed the link" : ec.message());
          return;
        }
        self->on_read(n);
      });
}

void link_stream::on_read(std::size_t n) {
  read_len_ += n;
  last_heard_ = std::chrono::steady_clock::now();
  std::size_t offset = 0;
  if (!preamble_seen_) {
    const auto r = link_codec::check_preamble(std::string_view(read_buf_.data(), read_len_));
    if (r.status == codec::decode_status::error) {
      shutdown(r.reason);
      return;
    }
    if (r.status == codec::decode_status::message) {
      preamble_seen_ = true;
      offset = r.consumed;
    }
  }
  while (open_ && preamble_seen_) {
    const auto r = link_codec::decode(
        std::string_view(read_buf_.data() + offset, read_len_ - offset), active_limits_, frame_);
    if (r.status == codec::decode_status::need_more) {
      break;
    }
    if (r.status == codec::decode_status::error) {
      shutdown(r.reason);
      return;
    }
    offset += r.consumed;
    if (frame_.has_ping()) {
      link::v2::Frame pong;
      pong.mutable_pong()->set_seq(frame_.ping().seq());
      send(pong);
      continue;
    }
    if (frame_.has_pong()) {
      continue;
    }
    if (on_frame_) {
      on_frame_(frame_, r.payload);
    }
  }
  if (!open_) {
    return;
  }
  if (offset > 0) {
    read_buf_.erase(0, offset);
    read_len_ -= offset;
  }
  do_read();
}

net::send_status link_stream::send(const link::v2::Frame& frame, std::string_view payload) {
  if (!open_) {
    return net::send_status::dropped;
  }
  const std::size_t size = link_codec::encoded_size(frame, payload.size());
  auto* out = out_.reserve(size);
  if (out == nullptr) {
    shutdown("peer is not reading: " + std::to_string(out_.bytes()) +
             " bytes queued towards it (the cap)");
    return net::send_status::dropped;
  }
  // encoded_size() computed the header's cached size: encode() reuses it.
  link_codec::encode(*out, frame, payload);
  const auto status = out_.commit();
  if (!out_.writing()) {
    do_write();
  }
  return status;
}

net::send_status link_stream::send_encoded(std::string_view wire) {
  if (!open_) {
    return net::send_status::dropped;
  }
  const auto status = out_.push(wire);
  if (status == net::send_status::dropped) {
    shutdown("peer is not reading: " + std::to_string(out_.bytes()) +
             " bytes queued towards it (the cap)");
    return status;
  }
  if (!out_.writing()) {
    do_write();
  }
  return status;
}

void link_stream::do_write() {
  const auto& bufs = out_.gather();
  if (bufs.empty()) {
    out_.shrink();
    if (closing_) {
      shutdown(close_reason_);
    }
    return;
  }
  asio::async_write(socket_, bufs, [self = shared_from_this()](std::error_code ec, std::size_t) {
    self->out_.written();
    if (ec) {
      self->shutdown(ec.message());
      return;
    }
    self->do_write();
  });
}

void link_stream::close(const std::string& reason) {
  if (!open_ || closing_) {
    return;
  }
  closing_ = true;
  close_reason_ = reason;
  if (!out_.writing()) {
    shutdown(reason);
    return;
  }
  timer_.expires_after(k_close_flush_limit);
  timer_.async_wait([self = shared_from_this()](std::error_code ec) {
    if (!ec) {
      self->shutdown(self->close_reason_ + " (flush timed out)");
    }
  });
}

void link_stream::shutdown(const std::string& reason) {
  if (!open_) {
    return;
  }
  open_ = false;
  std::error_code ignored;
  timer_.cancel();
  socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
  socket_.close(ignored);
  out_.clear();
  auto on_close = std::move(on_close_);
  on_frame_ = nullptr;
  on_close_ = nullptr;
  if (on_close) {
    on_close(reason);
  }
}

}  // namespace gwx
