#include "common/net/link_stream.hpp"

#include "common/codec/length_prefix.hpp"
#include "common/net/endpoint.hpp"

namespace gwx {
namespace {
constexpr std::size_t k_read_chunk = 64 * 1024;
constexpr auto k_close_flush_limit = std::chrono::seconds(2);
}  // namespace

link_stream::link_stream(asio::ip::tcp::socket socket, std::size_t max_frame)
    : socket_(std::move(socket)), timer_(socket_.get_executor()), max_frame_(max_frame) {
  std::error_code ec;
  const auto ep = socket_.remote_endpoint(ec);
  remote_ = ec ? "?" : format_host_port(ep.address().to_string(), ep.port());
  socket_.set_option(asio::ip::tcp::no_delay(true), ec);
  last_heard_ = std::chrono::steady_clock::now();
}

void link_stream::start(frame_handler on_frame, close_handler on_close) {
  on_frame_ = std::move(on_frame);
  on_close_ = std::move(on_close);
  read_buf_.resize(k_read_chunk);
  do_read();
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
    link::v1::Frame ping;
    ping.mutable_ping()->set_seq(++self->ping_seq_);
    self->send(ping);
    self->do_keepalive();
  });
}

void link_stream::do_read() {
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
  link::v1::Frame frame;
  while (open_) {
    const auto r = codec::length_prefix::decode(
        std::string_view(read_buf_.data() + offset, read_len_ - offset), max_frame_);
    if (r.status == codec::decode_status::need_more) {
      break;
    }
    if (r.status == codec::decode_status::error) {
      shutdown(r.reason);
      return;
    }
    offset += r.consumed;
    frame.Clear();
    if (!frame.ParseFromArray(r.payload.data(), static_cast<int>(r.payload.size()))) {
      shutdown("malformed link frame");
      return;
    }
    if (frame.has_ping()) {
      link::v1::Frame pong;
      pong.mutable_pong()->set_seq(frame.ping().seq());
      send(pong);
      continue;
    }
    if (frame.has_pong()) {
      continue;
    }
    if (on_frame_) {
      on_frame_(frame);
    }
  }
  if (!open_) {
    return;
  }
  if (offset > 0) {
    read_buf_.erase(0, offset);
    read_len_ -= offset;
    read_buf_.resize(std::max(read_buf_.size(), k_read_chunk));
  }
  do_read();
}

void link_stream::send(const link::v1::Frame& frame) {
  if (!open_) {
    return;
  }
  const auto pos = pending_.size();
  pending_.append(codec::length_prefix::k_header, '\0');
  frame.AppendToString(&pending_);
  codec::length_prefix::patch_header(
      pending_, pos,
      static_cast<std::uint32_t>(pending_.size() - pos - codec::length_prefix::k_header));
  if (!writing_now_) {
    do_write();
  }
}

void link_stream::do_write() {
  if (pending_.empty()) {
    writing_now_ = false;
    if (closing_) {
      shutdown(close_reason_);
    }
    return;
  }
  writing_now_ = true;
  writing_.swap(pending_);
  pending_.clear();
  asio::async_write(socket_, asio::buffer(writing_),
                    [self = shared_from_this()](std::error_code ec, std::size_t) {
                      self->writing_.clear();
                      if (ec) {
                        self->writing_now_ = false;
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
  if (!writing_now_) {
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
  auto on_close = std::move(on_close_);
  on_frame_ = nullptr;
  on_close_ = nullptr;
  if (on_close) {
    on_close(reason);
  }
}

}  // namespace gwx
