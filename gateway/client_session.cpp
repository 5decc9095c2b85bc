#include "gateway/client_session.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "common/codec/length_prefix.hpp"
#include "common/codec/line.hpp"
#include "common/net/endpoint.hpp"
#include "gateway/session_events.hpp"

namespace gwx::gateway {
namespace {

constexpr std::size_t k_initial_read = 1024;
constexpr std::size_t k_max_head = 8192;
constexpr std::size_t k_max_gather = 64;
// Room for a WebSocket frame header on top of the largest message.
constexpr std::size_t k_frame_overhead = 16;
// How long a closing client may take to accept what is still queued for it.
constexpr auto k_close_linger = std::chrono::seconds(5);

}  // namespace

client_session::client_session(session_events& events, const listener_config& listener,
                               asio::ip::tcp::socket socket)
    : events_(events),
      listener_(listener),
      socket_(std::move(socket)),
      timer_(socket_.get_executor()) {
  std::error_code ec;
  socket_.set_option(asio::ip::tcp::no_delay(true), ec);
  started_ = last_heard_ = std::chrono::steady_clock::now();
}

void client_session::start(client_record& record) {
  record_ = &record;
  read_buf_.resize(std::min(k_initial_read, listener_.max_message + k_frame_overhead));
  if (listener_.kind == framing::websocket) {
    state_ = client_state::handshake;
    handshake_ = std::make_unique<codec::ws::handshake_parser>(k_max_head);
  } else {
    state_ = client_state::open;
    events_.on_connected(*record_, nullptr, false);
  }
  arm_timer();
  do_read();
}

void client_session::do_read() {
  if (state_ == client_state::closed || state_ == client_state::closing ||
      state_ == client_state::deciding) {
    return;
  }
  if (read_len_ == read_buf_.size()) {
    const std::size_t cap =
        listener_.kind == framing::websocket && state_ == client_state::handshake
            ? k_max_head + 1
            : listener_.max_message + k_frame_overhead + 2;
    if (read_buf_.size() >= cap) {
      fail(codec::ws::k_close_too_big, "message larger than the limit");
      return;
    }
    read_buf_.resize(std::min(cap, read_buf_.size() * 2));
  }
  socket_.async_read_some(
      asio::buffer(read_buf_.data() + read_len_, read_buf_.size() - read_len_),
      [self = shared_from_this()](std::error_code ec, std::size_t n) {
        if (ec) {
          if (ec != asio::error::operation_aborted) {
            self->finish(ec == asio::error::eof ? "client closed the connection" : ec.message());
          }
          return;
        }
        self->on_read(n);
      });
}

void client_session::on_read(std::size_t n) {
  read_len_ += n;
  last_heard_ = std::chrono::steady_clock::now();
  missed_beats_ = 0;
  bool more = true;
  if (state_ == client_state::handshake) {
    more = handle_handshake();
  } else if (state_ == client_state::open) {
    more = listener_.kind == framing::websocket ? handle_websocket() : handle_stream();
  }
  if (more) {
    do_read();
  }
}

bool client_session::handle_handshake() {
  const auto r = handshake_->parse(std::string_view(read_buf_.data(), read_len_));
  using kind = codec::ws::handshake_result::kind;
  if (r.type == kind::need_more) {
    return true;
  }
  if (r.type == kind::error) {
    reject_upgrade(r.http_status, r.reason, r.reason);
    return false;
  }
  const auto& req = handshake_->request();
  if (listener_.path != "/" && req.path != listener_.path) {
    reject_upgrade(404, "no WebSocket endpoint at this path", "unknown path");
    return false;
  }
  if (!listener_.origins.empty()) {
    const auto* origin = req.header("origin");
    if (origin == nullptr || std::find(listener_.origins.begin(), listener_.origins.end(),
                                       *origin) == listener_.origins.end()) {
      reject_upgrade(403, "origin not allowed", "origin not allowed");
      return false;
    }
  }
  read_buf_.erase(0, r.consumed);
  read_buf_.resize(std::max(read_buf_.size(), k_initial_read));
  read_len_ -= r.consumed;
  frames_ = std::make_unique<codec::ws::frame_parser>(listener_.max_message);
  if (listener_.ask_on_connect) {
    state_ = client_state::deciding;
    events_.on_connected(*record_, &req, true);
    return false;
  }
  accept_upgrade();
  events_.on_connected(*record_, &req, false);
  handshake_.reset();
  return handle_websocket();
}

void client_session::accept_upgrade() {
  state_ = client_state::open;
  push(std::make_shared<const std::string>(
      codec::ws::make_upgrade_response(handshake_->accept_key())));
  arm_timer();
}

void client_session::reject_upgrade(int status, const std::string& body, const char* reason) {
  begin_close(std::string("upgrade refused: ") + reason);
  push(std::make_shared<const std::string>(codec::ws::make_error_response(status, body)));
}

void client_session::on_connect_decision(std::uint32_t http_status, const std::string& body) {
  if (state_ != client_state::deciding) {
    return;
  }
  if (http_status == 0 || http_status == 101) {
    accept_upgrade();
    handshake_.reset();
    if (handle_websocket()) {
      do_read();
    }
    return;
  }
  const auto status =
      http_status >= 400 && http_status <= 599 ? static_cast<int>(http_status) : 403;
  reject_upgrade(status, body.empty() ? "refused" : body, "refused by the worker");
}

bool client_session::handle_websocket() {
  using kind = codec::ws::frame_event::kind;
  std::size_t offset = 0;
  bool more = true;
  while (state_ == client_state::open) {
    const auto ev = frames_->next(read_buf_.data() + offset, read_len_ - offset);
    if (ev.type == kind::need_more) {
      break;
    }
    offset += ev.consumed;
    switch (ev.type) {
      case kind::message:
        deliver(ev.data, ev.binary);
        break;
      case kind::ping: {
        auto pong = std::make_shared<std::string>();
        codec::ws::encode_frame(*pong, codec::ws::opcode::pong, ev.data);
        push(pong);
        break;
      }
      case kind::pong:
        break;
      case kind::close: {
        auto reply = std::make_shared<std::string>();
        if (ev.close_code == codec::ws::k_close_no_status) {
          codec::ws::encode_frame(*reply, codec::ws::opcode::close, {});
        } else {
          codec::ws::encode_close(*reply, ev.close_code);
        }
        begin_close("client closed (" + std::to_string(ev.close_code) + ")");
        push(reply);
        more = false;
        break;
      }
      case kind::error:
        fail(ev.close_code, ev.reason);
        more = false;
        break;
      case kind::need_more:
        break;
    }
  }
  if (state_ == client_state::closed) {
    return false;
  }
  read_buf_.erase(0, offset);
  read_buf_.resize(std::max(read_buf_.size(), k_initial_read));
  read_len_ -= offset;
  return more && state_ == client_state::open;
}

bool client_session::handle_stream() {
  if (listener_.kind == framing::raw) {
    deliver(std::string_view(read_buf_.data(), std::min(read_len_, listener_.max_message)), false);
    read_len_ = 0;
    return state_ == client_state::open;
  }
  std::size_t offset = 0;
  while (state_ == client_state::open) {
    const std::string_view view(read_buf_.data() + offset, read_len_ - offset);
    const auto r = listener_.kind == framing::line
                       ? codec::line::decode(view, listener_.max_message)
                       : codec::length_prefix::decode(view, listener_.max_message);
    if (r.status == codec::decode_status::need_more) {
      break;
    }
    if (r.status == codec::decode_status::error) {
      fail(0, r.reason);
      return false;
    }
    deliver(r.payload, false);
    offset += r.consumed;
  }
  if (state_ == client_state::closed) {
    return false;
  }
  read_buf_.erase(0, offset);
  read_buf_.resize(std::max(read_buf_.size(), k_initial_read));
  read_len_ -= offset;
  return state_ == client_state::open;
}

void client_session::deliver(std::string_view payload, bool binary) {
  events_.on_message(*record_, payload, binary);
}

send_status client_session::send(const wire_bytes& bytes) {
  if (state_ != client_state::open) {
    return send_status::closed;
  }
  if (queued_bytes_ + bytes->size() > listener_.send_buffer) {
    if (listener_.on_slow == slow_policy::drop) {
      listener_.metrics.messages_dropped_slow.inc();
      return send_status::dropped;
    }
    destroy("send buffer full (slow client)");
    return send_status::closed;
  }
  push(bytes);
  listener_.metrics.messages_out.inc();
  listener_.metrics.bytes_out.inc(bytes->size());
  return send_status::ok;
}

void client_session::push(const wire_bytes& bytes) {
  queued_bytes_ += bytes->size();
  queue_.push_back(bytes);
  if (!writing_) {
    do_write();
  }
}

void client_session::do_write() {
  if (state_ == client_state::closed) {
    return;
  }
  if (queue_head_ == queue_.size()) {
    queue_.clear();
    queue_head_ = 0;
    writing_ = false;
    if (close_after_flush_) {
      finish(close_reason_);
    }
    return;
  }
  writing_ = true;
  write_bufs_.clear();
  const std::size_t end = std::min(queue_.size(), queue_head_ + k_max_gather);
  for (std::size_t i = queue_head_; i < end; ++i) {
    write_bufs_.emplace_back(asio::buffer(*queue_[i]));
  }
  writing_count_ = end - queue_head_;
  asio::async_write(
      socket_, write_bufs_, [self = shared_from_this()](std::error_code ec, std::size_t) {
        if (self->state_ == client_state::closed) {
          return;
        }
        for (std::size_t i = 0; i < self->writing_count_; ++i) {
          auto& slot = self->queue_[self->queue_head_ + i];
          self->queued_bytes_ -= slot->size();
          slot.reset();
        }
        self->queue_head_ += self->writing_count_;
        if (ec) {
          self->finish("write failed: " + ec.message());
          return;
        }
        if (self->queue_head_ > k_max_gather && self->queue_head_ * 2 > self->queue_.size()) {
          self->queue_.erase(self->queue_.begin(),
                             self->queue_.begin() + static_cast<std::ptrdiff_t>(self->queue_head_));
          self->queue_head_ = 0;
        }
        self->do_write();
      });
}

void client_session::close_gracefully(
    std::optional<std::pair<std::string_view, bool>> final_message) {
  if (state_ != client_state::open) {
    if (state_ == client_state::deciding || state_ == client_state::handshake) {
      destroy("closed before the upgrade completed");
    }
    return;
  }
  if (final_message) {
    push(encode_for(listener_.kind, final_message->first, final_message->second));
  }
  if (listener_.kind == framing::websocket) {
    auto frame = std::make_shared<std::string>();
    codec::ws::encode_close(*frame, codec::ws::k_close_normal);
    push(frame);
  }
  begin_close("closed by the server");
  if (!writing_) {
    do_write();
  }
}

void client_session::fail(std::uint16_t ws_code, const std::string& reason) {
  if (listener_.kind == framing::websocket && state_ == client_state::open && ws_code != 0) {
    auto frame = std::make_shared<std::string>();
    codec::ws::encode_close(*frame, ws_code);
    begin_close("protocol error: " + reason + " (" + std::to_string(ws_code) + ")");
    push(frame);
    return;
  }
  destroy("protocol error: " + reason);
}

void client_session::destroy(const std::string& reason) {
  finish(reason);
}

void client_session::close_with_reason(std::uint16_t ws_code, const std::string& reason) {
  if (state_ != client_state::open) {
    destroy(reason);
    return;
  }
  if (listener_.kind == framing::websocket) {
    auto frame = std::make_shared<std::string>();
    codec::ws::encode_close(*frame, ws_code, reason);
    push(frame);
  }
  begin_close(reason);
  if (!writing_) {
    do_write();
  }
}

void client_session::go_away(const std::string& goodbye) {
  if (state_ != client_state::open) {
    if (state_ == client_state::handshake || state_ == client_state::deciding) {
      destroy("gateway shutting down");
    }
    return;
  }
  if (listener_.kind == framing::websocket) {
    auto frame = std::make_shared<std::string>();
    codec::ws::encode_close(*frame, codec::ws::k_close_going_away, "gateway shutting down");
    push(frame);
  } else if (!goodbye.empty()) {
    push(encode_for(listener_.kind, goodbye, false));
  }
  begin_close("gateway shutting down");
  if (!writing_) {
    do_write();
  }
}

void client_session::begin_close(std::string reason) {
  state_ = client_state::closing;
  close_after_flush_ = true;
  close_reason_ = std::move(reason);
  timer_.expires_after(k_close_linger);
  timer_.async_wait([self = shared_from_this()](std::error_code ec) {
    if (!ec && self->state_ == client_state::closing) {
      self->finish(self->close_reason_ + " (flush timed out)");
    }
  });
}

void client_session::finish(const std::string& reason) {
  if (state_ == client_state::closed) {
    return;
  }
  auto self = shared_from_this();
  state_ = client_state::closed;
  std::error_code ignored;
  timer_.cancel();
  socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
  socket_.close(ignored);
  queue_.clear();
  queue_head_ = 0;
  queued_bytes_ = 0;
  events_.on_closed(*record_, reason);
}

std::chrono::milliseconds client_session::tick_period() const {
  if (state_ == client_state::handshake || state_ == client_state::deciding) {
    return listener_.handshake_timeout;
  }
  std::chrono::milliseconds period{0};
  for (const auto p : {listener_.heartbeat_interval, listener_.idle_timeout}) {
    if (p.count() > 0 && (period.count() == 0 || p < period)) {
      period = p;
    }
  }
  return period;
}

void client_session::arm_timer() {
  const auto period = tick_period();
  if (period.count() == 0 || state_ == client_state::closed || state_ == client_state::closing) {
    timer_.cancel();
    return;
  }
  timer_.expires_after(period);
  timer_.async_wait([self = shared_from_this()](std::error_code ec) {
    if (!ec) {
      self->on_tick();
    }
  });
}

void client_session::on_tick() {
  const auto now = std::chrono::steady_clock::now();
  if (state_ == client_state::handshake || state_ == client_state::deciding) {
    if (now - started_ >= listener_.handshake_timeout) {
      if (state_ == client_state::deciding) {
        reject_upgrade(503, "no decision from a worker in time", "decision timed out");
      } else {
        destroy("handshake timed out");
      }
      return;
    }
    arm_timer();
    return;
  }
  if (state_ != client_state::open) {
    return;
  }
  const auto silent = now - last_heard_;
  if (listener_.idle_timeout.count() > 0 && silent >= listener_.idle_timeout) {
    fail(codec::ws::k_close_going_away, "idle timeout");
    return;
  }
  if (listener_.heartbeat_interval.count() > 0) {
    if (silent >= listener_.heartbeat_interval) {
      ++missed_beats_;
    }
    if (listener_.heartbeat_missed > 0 && missed_beats_ >= listener_.heartbeat_missed) {
      fail(codec::ws::k_close_going_away, "heartbeat timeout");
      return;
    }
    if (listener_.kind == framing::websocket) {
      auto ping = std::make_shared<std::string>();
      codec::ws::encode_frame(*ping, codec::ws::opcode::ping,
                              std::string_view(listener_.heartbeat_data).substr(0, 125));
      push(ping);
    } else if (!listener_.heartbeat_data.empty()) {
      push(encode_for(listener_.kind, listener_.heartbeat_data, false));
    }
  }
  arm_timer();
}

}  // namespace gwx::gateway
