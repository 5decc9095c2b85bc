#include "gateway/client_session.hpp"

#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <string_view>
#include <system_error>

#include "common/codec/length_prefix.hpp"
#include "common/codec/line.hpp"
#include "common/net/endpoint.hpp"
#include "gateway/client_directory.hpp"
#include "gateway/client_loop.hpp"
#include "gateway/listener_tls.hpp"
#include "gateway/session_events.hpp"

namespace gwx::gateway {
namespace {

constexpr std::size_t k_max_head = 8192;
// Room for a WebSocket frame header on top of the largest message.
constexpr std::size_t k_frame_overhead = 16;
// How long a closing client may take to accept what is still queued for it.
constexpr auto k_close_linger = std::chrono::seconds(5);
// One read's worth: what a loop reads into before anything is kept per client.
constexpr std::size_t k_read_scratch = client_loop::k_read_most;
// An unfinished message's buffer larger than this is not kept for a much smaller tail.
constexpr std::size_t k_keep_pending_capacity = 16 * 1024;

// Every TLS client of a loop decrypts into this one buffer (plain ones read into the loop's:
// client_loop::read_later); only the unfinished tail of a message is kept per client, so an
// idle client holds no read buffer at all.
std::string& read_scratch() {
  thread_local std::string buf(k_read_scratch, '\0');
  return buf;
}

}  // namespace

std::string& client_session::control_scratch() {
  thread_local std::string buf;
  buf.clear();
  return buf;
}

client_session::client_session(client_loop& loop, const listener_config& listener,
                               client_socket socket)
    : client_session(loop, listener, std::move(socket), false) {}

client_session::client_session(client_loop& loop, const listener_config& listener,
                               client_socket socket, bool tls)
    : loop_(loop), listener_(listener), socket_(std::move(socket)), tls_(tls) {
  std::error_code ec;
  socket_.set_option(asio::ip::tcp::no_delay(true), ec);
  socket_.non_blocking(true, ec);
  last_heard_ = std::chrono::steady_clock::now();
}

tls_client_session::tls_client_session(client_loop& loop, const listener_config& listener,
                                       client_socket socket)
    : client_session(loop, listener, std::move(socket), true),
      io_(listener.tls_state->context().new_ssl(), native_handle()) {}

net::tls_io* client_session::tls_io() {
  return tls_ ? &static_cast<tls_client_session*>(this)->io_ : nullptr;
}

const net::tls_io* client_session::tls() const {
  return tls_ ? &static_cast<const tls_client_session*>(this)->io_ : nullptr;
}

void client_session::start(client_record& record, handshake_slot place) {
  record_ = &record;
  handshake_place_ = std::move(place);
  if (tls_) {
    if (tls_io()->native() == nullptr) {
      finish(close_cause::io_error, "no memory for a TLS connection");
      return;
    }
    // The TLS handshake first; the WebSocket upgrade or the TCP connect follows it.
    state_ = client_state::handshake;
  } else if (listener_.kind == framing::websocket) {
    state_ = client_state::handshake;
    handshake_ = std::make_unique<codec::ws::handshake_parser>(k_max_head);
  } else {
    state_ = client_state::open;
    handshake_place_.release();
    loop_.events().on_connected(*record_, nullptr, false);
  }
  arm_timer();
  arm_read();
}

std::size_t client_session::most_unfinished(const listener_config& listener) {
  return listener.max_message +
         std::max(k_max_head + k_frame_overhead, k_read_scratch + k_frame_overhead + 2);
}

std::size_t client_session::max_pending() const {
  switch (state_) {
    case client_state::handshake:
      return k_max_head;
    case client_state::deciding:
      // Frames sent right behind the upgrade request wait for the decision: a bounded amount.
      return k_max_head + listener_.max_message + k_frame_overhead;
    default:
      break;
  }
  // One unfinished message or frame (the frame parser takes whole fragments in as they come);
  // paused mid-read, the rest of that read waits too (no more is read until resumed).
  const std::size_t unread = paused_ ? k_read_scratch : 0;
  return unread + listener_.max_message + k_frame_overhead + 2;
}

client_session::~client_session() {
  loop_.hold_unfinished(*this, unfinished_, 0);
  unwatch();
}

void client_session::unwatch() {
  if (read_watched_) {
    loop_.reads().forget(*this, socket_.native_handle());
    read_watched_ = false;
  }
}

void client_session::arm_read() {
  if (reading_ || paused_ || (state_ != client_state::handshake && state_ != client_state::open)) {
    return;
  }
  reading_ = true;
  if (!tls_) {
    // Watched once, level-triggered: no system call per read (common/net/read_poller.hpp).
    if (!read_watched_) {
      if (!loop_.reads().watch(*this, socket_.native_handle())) {
        reading_ = false;
        finish(close_cause::io_error, "cannot watch the socket: " +
                                          std::error_code(errno, std::system_category()).message());
        return;
      }
      read_watched_ = true;
    }
    return;
  }
  socket_.async_wait(asio::ip::tcp::socket::wait_read,
                     [self = shared_from_this()](std::error_code ec) {
                       self->reading_ = false;
                       if (ec) {
                         if (ec != asio::error::operation_aborted) {
                           self->finish(close_cause::io_error, ec.message());
                         }
                         return;
                       }
                       self->on_readable();
                     });
}

void client_session::pause_reading() {
  paused_ = true;
}

void client_session::resume_reading() {
  if (!paused_) {
    return;
  }
  paused_ = false;
  if (pending_.empty()) {
    read_again();
    return;
  }
  // Messages read before the pause go first; posted, so whoever resumed us is not re-entered.
  asio::post(socket_.get_executor(), [self = shared_from_this()] {
    if (self->paused_ || self->state_ != client_state::open) {
      return;
    }
    self->consume_pending();
    if (self->state_ != client_state::closed) {
      self->read_again();
    }
  });
}

void client_session::on_poll_ready() {
  if (!reading_) {
    // Readable while it does not want to read (paused, deciding, closing): unwatched until
    // arm_read() wants it again, so the level-triggered set does not report it every turn.
    unwatch();
    return;
  }
  reading_ = false;
  loop_.read_later(*this);  // read with the turn's others: on_batched_read()
}

void client_session::on_batched_read(char* data, long result) {
  if (state_ == client_state::closing || state_ == client_state::closed) {
    return;  // closed since it was reported: what it read goes with it
  }
  if (result == -EAGAIN || result == -EWOULDBLOCK || result == -EINTR) {
    arm_read();  // still watched: reported again when there is something
    return;
  }
  if (result == 0) {
    finish(close_cause::client, "client closed the connection");
    return;
  }
  if (result < 0) {
    finish(close_cause::io_error,
           std::error_code(static_cast<int>(-result), std::system_category()).message());
    return;
  }
  // Paused since it was reported (a worker's bound reached by the turn's other reads): take()
  // keeps what was read until resume_reading().
  if (take(data, static_cast<std::size_t>(result))) {
    arm_read();
  }
}

void client_session::read_again() {
  if (!tls_) {
    arm_read();
    return;
  }
  asio::post(socket_.get_executor(), [self = shared_from_this()] { self->on_readable(); });
}

void client_session::on_readable() {
  if (paused_ || (state_ != client_state::handshake && state_ != client_state::open)) {
    return;
  }
  on_tls_readable(*tls_io());
}

bool client_session::take(char* data, std::size_t n) {
  if (watches_silence()) {
    last_heard_ = std::chrono::steady_clock::now();
  }
  missed_beats_ = 0;
  if (pending_.empty()) {
    const std::size_t used = process(data, n);
    if (state_ == client_state::closed) {
      return false;
    }
    if (used < n) {
      if (n - used > max_pending()) {
        fail(codec::ws::k_close_too_big, "message larger than the limit");
        return false;
      }
      pending_.assign(data + used, n - used);
    }
    return within_unfinished_budget();
  }
  // The read may hold whole messages behind the unfinished one: the bound applies to what is
  // left unfinished once they are taken (a read adds at most k_read_scratch meanwhile).
  pending_.append(data, n);
  consume_pending();
  if (state_ == client_state::closed) {
    return false;
  }
  if (pending_.size() > max_pending()) {
    fail(codec::ws::k_close_too_big, "message larger than the limit");
    return false;
  }
  return within_unfinished_budget();
}

bool client_session::within_unfinished_budget() {
  const std::size_t held =
      (pending_.empty() ? 0 : pending_.capacity()) + (frames_ ? frames_->buffered() : 0);
  if (loop_.hold_unfinished(*this, unfinished_, held)) {
    return true;
  }
  let_go_unfinished();
  return false;
}

void client_session::let_go_unfinished() {
  // At once: the budget is for the clients that stay.
  std::string().swap(pending_);
  frames_.reset();
  loop_.hold_unfinished(*this, unfinished_, 0);
  close_with_reason(close_cause::overload, codec::ws::k_close_try_again_later,
                    "server busy: too many unfinished messages, try again later");
}

void client_session::on_tls_readable(net::tls_io& tls) {
  if (!tls.established()) {
    const auto st = tls.handshake();
    if (st == net::tls_status::want_read || st == net::tls_status::want_write) {
      tls_wait(st);
      return;
    }
    if (st != net::tls_status::ok) {
      tls_handshake_failed(tls.failure(), tls.failure_detail());
      return;
    }
    tls_established();
    if (state_ != client_state::handshake && state_ != client_state::open) {
      return;
    }
  }
  // Everything there is, up to the loop's buffer: after a wake-up the socket is read until it
  // would block, so the next wake-up is sure to come.
  auto& scratch = read_scratch();
  std::size_t filled = 0;
  auto st = net::tls_status::ok;
  while (scratch.size() - filled >= net::tls_io::k_record) {
    std::size_t n = 0;
    st = tls.read(scratch.data() + filled, scratch.size() - filled, n);
    if (st != net::tls_status::ok) {
      break;
    }
    filled += n;
  }
  if (filled > 0 && !take(scratch.data(), filled)) {
    return;
  }
  switch (st) {
    case net::tls_status::ok:
      read_again();
      return;
    case net::tls_status::want_read:
    case net::tls_status::want_write:
      tls_wait(st);
      return;
    case net::tls_status::closed:
      finish(close_cause::client, "client closed the connection");
      return;
    case net::tls_status::failed:
      finish(close_cause::io_error, "TLS error: " + tls.failure_detail());
      return;
  }
}

void client_session::tls_wait(net::tls_status st) {
  if (st == net::tls_status::want_read) {
    arm_read();
    return;
  }
  socket_.async_wait(asio::ip::tcp::socket::wait_write,
                     [self = shared_from_this()](std::error_code ec) {
                       if (ec) {
                         if (ec != asio::error::operation_aborted) {
                           self->finish(close_cause::io_error, ec.message());
                         }
                         return;
                       }
                       self->on_readable();
                     });
}

void client_session::tls_established() {
  if (listener_.kind == framing::websocket) {
    handshake_ = std::make_unique<codec::ws::handshake_parser>(k_max_head);
    return;
  }
  state_ = client_state::open;
  handshake_place_.release();
  loop_.events().on_connected(*record_, nullptr, false);
  arm_timer();
}

void client_session::tls_handshake_failed(net::tls_failure reason, const std::string& detail) {
  listener_.tls_state->handshake_failed(
      reason, detail, format_host_port(record_->remote_ip(), record_->remote_port()));
  finish(reason == net::tls_failure::timeout ? close_cause::timeout : close_cause::protocol_error,
         std::string("TLS handshake failed: ") + net::to_string(reason));
}

void client_session::consume_pending() {
  const std::size_t used = process(pending_.data(), pending_.size());
  if (state_ == client_state::closed) {
    return;
  }
  pending_.erase(0, used);
  if (pending_.empty()) {
    // The tail of a large message is gone: so is its memory.
    std::string().swap(pending_);
  } else if (used > 0 && pending_.capacity() > k_keep_pending_capacity &&
             pending_.size() < pending_.capacity() / 4) {
    // A large message taken, the first bytes of the next one left: they must not keep the
    // large one's buffer (an idle client would hold it for as long as it stays connected).
    std::string(pending_).swap(pending_);
  }
}

std::size_t client_session::process(char* data, std::size_t size) {
  std::size_t used = 0;
  if (state_ == client_state::handshake) {
    used = handle_handshake(data, size);
  }
  if (state_ == client_state::open && used < size) {
    used += listener_.kind == framing::websocket ? handle_websocket(data + used, size - used)
                                                 : handle_stream(data + used, size - used);
  }
  if (frames_ && used == size && !frames_->in_fragmented_message() &&
      state_ == client_state::open) {
    // Between messages the parser holds no state worth keeping: an idle client keeps none.
    loop_.give_back(std::move(frames_));
  }
  return used;
}

std::size_t client_session::handle_handshake(const char* data, std::size_t size) {
  const auto r = handshake_->parse(std::string_view(data, size));
  using kind = codec::ws::handshake_result::kind;
  if (r.type == kind::need_more) {
    return 0;
  }
  if (r.type == kind::error) {
    reject_upgrade(close_cause::protocol_error, r.http_status, r.reason, r.reason);
    return size;
  }
  const auto& req = handshake_->request();
  if (listener_.path != "/" && req.path != listener_.path) {
    reject_upgrade(close_cause::refused, 404, "no WebSocket endpoint at this path", "unknown path");
    return size;
  }
  if (!listener_.origins.empty()) {
    const auto* origin = req.header("origin");
    if (origin == nullptr || std::find(listener_.origins.begin(), listener_.origins.end(),
                                       *origin) == listener_.origins.end()) {
      reject_upgrade(close_cause::refused, 403, "origin not allowed", "origin not allowed");
      return size;
    }
  }
  if (listener_.ask_on_connect) {
    state_ = client_state::deciding;
    loop_.events().on_connected(*record_, &req, true);
    return r.consumed;
  }
  accept_upgrade();
  loop_.events().on_connected(*record_, &req, false);
  handshake_.reset();
  return r.consumed;
}

void client_session::accept_upgrade() {
  state_ = client_state::open;
  handshake_place_.release();
  out().force(codec::ws::make_upgrade_response(handshake_->accept_key()));
  do_write();
  arm_timer();
}

void client_session::reject_upgrade(close_cause cause, int status, const std::string& body,
                                    const char* reason) {
  begin_close(cause, std::string("upgrade refused: ") + reason);
  out().force(codec::ws::make_error_response(status, body));
  do_write();
}

void client_session::on_connect_decision(std::uint32_t http_status, const std::string& body) {
  if (state_ != client_state::deciding) {
    return;
  }
  if (http_status == 0 || http_status == 101) {
    accept_upgrade();
    handshake_.reset();
    // Frames that came right behind the upgrade request.
    if (!pending_.empty()) {
      consume_pending();
      if (state_ == client_state::closed) {
        return;
      }
    }
    read_again();
    return;
  }
  const auto status =
      http_status >= 400 && http_status <= 599 ? static_cast<int>(http_status) : 403;
  reject_upgrade(close_cause::refused, status, body.empty() ? "refused" : body,
                 "refused by the worker");
}

std::size_t client_session::handle_websocket(char* data, std::size_t size) {
  using kind = codec::ws::frame_event::kind;
  if (!frames_) {
    frames_ = loop_.take_parser(listener_.max_message);
  }
  std::size_t offset = 0;
  // Paused (its events must wait): the rest stays unparsed until resume_reading().
  while (state_ == client_state::open && !paused_) {
    const auto ev = frames_->next(data + offset, size - offset);
    offset += ev.consumed;  // need_more too: whole fragments already taken in
    if (ev.type == kind::need_more) {
      break;
    }
    switch (ev.type) {
      case kind::message:
        deliver(ev.data, ev.binary);
        break;
      case kind::ping: {
        // A pong that does not fit is a message that does not fit: --slow-client applies (a
        // ping flood that never reads its pongs is closed, not kept with a full buffer).
        auto& pong = control_scratch();
        codec::ws::encode_frame(pong, codec::ws::opcode::pong, ev.data);
        push_control(pong, false);
        break;
      }
      case kind::pong:
        break;
      case kind::close: {
        auto& reply = control_scratch();
        if (ev.close_code == codec::ws::k_close_no_status) {
          codec::ws::encode_frame(reply, codec::ws::opcode::close, {});
        } else {
          codec::ws::encode_close(reply, ev.close_code);
        }
        begin_close(close_cause::client, "client closed (" + std::to_string(ev.close_code) + ")");
        push_control(reply, true);
        return size;
      }
      case kind::error:
        fail(ev.close_code, ev.reason);
        return size;
      case kind::need_more:
        break;
    }
  }
  return offset;
}

std::size_t client_session::handle_stream(const char* data, std::size_t size) {
  if (listener_.kind == framing::raw) {
    // Each read is a message; a read larger than the limit is cut into several, never lost.
    std::size_t off = 0;
    while (off < size && state_ == client_state::open && !paused_) {
      const std::size_t n = std::min(size - off, listener_.max_message);
      deliver(std::string_view(data + off, n), false);
      off += n;
    }
    return state_ == client_state::open ? off : size;
  }
  // Paused (its events must wait): the rest stays unparsed until resume_reading().
  std::size_t offset = 0;
  while (state_ == client_state::open && !paused_) {
    const std::string_view view(data + offset, size - offset);
    const auto r = listener_.kind == framing::line
                       ? codec::line::decode(view, listener_.max_message)
                       : codec::length_prefix::decode(view, listener_.max_message);
    if (r.status == codec::decode_status::need_more) {
      break;
    }
    if (r.status == codec::decode_status::error) {
      fail(0, r.reason);
      return size;
    }
    deliver(r.payload, false);
    offset += r.consumed;
  }
  return offset;
}

void client_session::deliver(std::string_view payload, bool binary) {
  loop_.events().on_message(*record_, payload, binary);
}

send_status client_session::over_cap() {
  if (out_ && out_->empty()) {
    loop_.give_back(std::move(out_));
  }
  if (listener_.on_slow == slow_policy::drop) {
    listener_.metrics.messages_dropped_slow.inc();
    return send_status::dropped;
  }
  destroy(close_cause::slow_client, "send buffer full (slow client)");
  return send_status::closed;
}

send_status client_session::send(const wire_bytes& bytes) {
  if (state_ != client_state::open) {
    return send_status::closed;
  }
  if (!out_ && !flush_scheduled_ && !tls_) {
    // Nothing waits for this client: the loop holds the shared buffer (once for all the
    // recipients of a broadcast) and this client writes it at the end of the turn, with no
    // send queue unless the socket does not take it all. The cap applies as to an empty queue.
    const std::size_t cap = listener_.send_buffer;
    if (cap != 0 && bytes->size() + net::send_queue::k_shared_overhead > cap) {
      return over_cap();
    }
    flush_scheduled_ = true;
    loop_.flush_later(*this, bytes);
  } else if (out().push(bytes) == net::send_status::dropped) {
    return over_cap();
  } else {
    do_write();
  }
  listener_.metrics.messages_out.inc();
  listener_.metrics.bytes_out.inc(bytes->size());
  return send_status::ok;
}

send_status client_session::send_message(framing /*kind: the listener's*/, std::string_view payload,
                                         bool binary) {
  if (state_ != client_state::open) {
    return send_status::closed;
  }
  // Encoded straight into the queue: no buffer of its own for a message to one client.
  const std::size_t most = payload.size() + k_frame_overhead;
  auto& queue = out();
  auto* out = queue.reserve(most);
  if (out == nullptr) {
    return over_cap();
  }
  const std::size_t before = out->size();
  encode_into(*out, listener_.kind, payload, binary);
  const std::size_t written = out->size() - before;
  queue.commit();
  listener_.metrics.messages_out.inc();
  listener_.metrics.bytes_out.inc(written);
  do_write();
  return send_status::ok;
}

void client_session::push_control(std::string_view bytes, bool always) {
  if (always) {
    out().force(bytes);
  } else if (out().push(bytes) == net::send_status::dropped) {
    over_cap();
    return;
  }
  do_write();
}

net::send_queue& client_session::out() {
  if (!out_) {
    out_ = loop_.take_queue(listener_.send_buffer);
  }
  return *out_;
}

void client_session::do_write() {
  if (state_ == client_state::closed || flush_scheduled_) {
    return;
  }
  // Written at the end of this turn of the loop: every message queued for this client until
  // then leaves in one system call.
  flush_scheduled_ = true;
  loop_.flush_later(*this);
}

void client_session::flush(const wire_bytes* head) {
  flush_scheduled_ = false;
  if (head != nullptr && state_ != client_state::closed) {
    // Nothing was queued when the head came (so no write is in flight): it goes first.
    if (out_ && !out_->empty()) {
      out_->prepend(*head);
    } else {
      loop_.write_later(*this, *head);  // on_batched_write() goes on
      return;
    }
  }
  write_queued(true);
}

void client_session::on_batched_write(const wire_bytes* head, long result) {
  if (state_ == client_state::closed) {
    return;  // a queue's in-flight buffers stay with it until it goes
  }
  const bool would_block = result == -EAGAIN || result == -EWOULDBLOCK || result == -EINTR;
  if (result < 0 && !would_block) {
    finish(close_cause::io_error,
           "write failed: " +
               std::error_code(static_cast<int>(-result), std::system_category()).message());
    return;
  }
  const auto n = static_cast<std::size_t>(would_block ? 0 : result);
  if (head != nullptr) {
    if (n < (*head)->size()) {
      out().prepend(*head, n);  // the rest waits in the queue for the socket
    }
    write_queued();  // anything queued after the head, or the close it waited for
    return;
  }
  const auto& bufs = out_->in_flight();
  if (n < asio::buffer_size(bufs)) {
    write_rest(bufs, n);
    return;
  }
  out_->written();
  write_queued();
}

void client_session::write_queued(bool batched) {
  if (!out_ && !close_after_flush_) {
    return;  // the usual end of a broadcast: its head was all written
  }
  if (state_ == client_state::closed || (out_ && out_->writing())) {
    return;  // a write in flight calls write_queued() when done
  }
  auto* tls = tls_io();
  if (tls != nullptr && !tls->established()) {
    return;  // nothing is sent before the handshake is done
  }
  while (out_) {
    const auto& bufs = out_->gather();
    if (bufs.empty()) {
      break;
    }
    if (tls != nullptr) {
      const auto st = tls->write(bufs);
      if (st == net::tls_status::want_write || st == net::tls_status::want_read) {
        tls_write_rest(bufs, st);
        return;
      }
      if (st != net::tls_status::ok) {
        out_->written();
        finish(st == net::tls_status::closed ? close_cause::client : close_cause::io_error,
               st == net::tls_status::closed ? "client closed the connection"
                                             : "write failed: " + tls->failure_detail());
        return;
      }
      out_->written();
      continue;
    }
    if (batched) {
      loop_.write_later(*this, bufs);  // on_batched_write() goes on
      return;
    }
    // The socket is non-blocking: write what it takes now, the rest when it is writable.
    std::error_code ec;
    const std::size_t n = socket_.write_some(bufs, ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) {
      write_rest(bufs, 0);
      return;
    }
    if (ec) {
      finish(close_cause::io_error, "write failed: " + ec.message());
      return;
    }
    if (n < asio::buffer_size(bufs)) {
      write_rest(bufs, n);
      return;
    }
    out_->written();
  }
  // Everything is written: an idle client holds no queue.
  if (out_) {
    loop_.give_back(std::move(out_));
  }
  if (close_after_flush_) {
    finish(closing_cause_, *close_reason_);
  }
}

void client_session::write_rest(const std::vector<asio::const_buffer>& bufs, std::size_t written) {
  std::vector<asio::const_buffer> rest;
  rest.reserve(bufs.size());
  for (const auto& b : bufs) {
    if (written >= b.size()) {
      written -= b.size();
      continue;
    }
    rest.push_back(b + written);
    written = 0;
  }
  asio::async_write(socket_, std::move(rest),
                    [self = shared_from_this()](std::error_code ec, std::size_t) {
                      if (self->state_ == client_state::closed) {
                        return;
                      }
                      self->out_->written();
                      if (ec) {
                        self->finish(close_cause::io_error, "write failed: " + ec.message());
                        return;
                      }
                      self->write_queued();
                    });
}

void client_session::tls_write_rest(const std::vector<asio::const_buffer>& bufs,
                                    net::tls_status st) {
  // `bufs` is the queue's in-flight list: it stays as it is until written().
  socket_.async_wait(
      st == net::tls_status::want_write ? asio::ip::tcp::socket::wait_write
                                        : asio::ip::tcp::socket::wait_read,
      [self = shared_from_this(), &bufs](std::error_code ec) {
        if (self->state_ == client_state::closed) {
          return;
        }
        auto& tls = *self->tls_io();
        const auto next = ec ? net::tls_status::failed : tls.write(bufs);
        if (next == net::tls_status::want_write || next == net::tls_status::want_read) {
          self->tls_write_rest(bufs, next);
          return;
        }
        self->out_->written();
        if (next != net::tls_status::ok) {
          self->finish(close_cause::io_error,
                       "write failed: " + (ec ? ec.message() : tls.failure_detail()));
          return;
        }
        self->write_queued();
      });
}

void client_session::close_gracefully(
    std::optional<std::pair<std::string_view, bool>> final_message) {
  if (state_ != client_state::open) {
    if (state_ == client_state::deciding || state_ == client_state::handshake) {
      destroy(close_cause::server, "closed before the upgrade completed");
    }
    return;
  }
  if (final_message) {
    auto& data = control_scratch();
    encode_into(data, listener_.kind, final_message->first, final_message->second);
    out().force(data);
  }
  if (listener_.kind == framing::websocket) {
    auto& frame = control_scratch();
    codec::ws::encode_close(frame, codec::ws::k_close_normal);
    out().force(frame);
  }
  begin_close(close_cause::server, "closed by the server");
  do_write();
}

void client_session::fail(std::uint16_t ws_code, const std::string& reason) {
  if (listener_.kind == framing::websocket && state_ == client_state::open && ws_code != 0) {
    auto& frame = control_scratch();
    codec::ws::encode_close(frame, ws_code, reason);  // the client is told why, too
    begin_close(close_cause::protocol_error,
                "protocol error: " + reason + " (" + std::to_string(ws_code) + ")");
    push_control(frame, true);
    return;
  }
  destroy(close_cause::protocol_error, "protocol error: " + reason);
}

void client_session::destroy(close_cause cause, const std::string& reason) {
  finish(cause, reason);
}

void client_session::close_with_reason(close_cause cause, std::uint16_t ws_code,
                                       const std::string& reason) {
  if (state_ != client_state::open) {
    destroy(cause, reason);
    return;
  }
  if (listener_.kind == framing::websocket) {
    auto& frame = control_scratch();
    codec::ws::encode_close(frame, ws_code, reason);
    out().force(frame);
  }
  begin_close(cause, reason);
  do_write();
}

void client_session::go_away(const std::string& goodbye) {
  if (state_ != client_state::open) {
    if (state_ == client_state::handshake || state_ == client_state::deciding) {
      destroy(close_cause::shutdown, "gateway shutting down");
    }
    return;
  }
  if (listener_.kind == framing::websocket) {
    auto& frame = control_scratch();
    codec::ws::encode_close(frame, codec::ws::k_close_going_away, "gateway shutting down");
    out().force(frame);
  } else if (!goodbye.empty()) {
    auto& data = control_scratch();
    encode_into(data, listener_.kind, goodbye, false);
    out().force(data);
  }
  begin_close(close_cause::shutdown, "gateway shutting down");
  do_write();
}

void client_session::begin_close(close_cause cause, std::string reason) {
  state_ = client_state::closing;
  closing_cause_ = cause;
  close_after_flush_ = true;
  close_reason_ = std::make_unique<std::string>(std::move(reason));
  loop_.schedule(*this, std::chrono::steady_clock::now() + k_close_linger);
}

void client_session::finish(close_cause cause, const std::string& reason) {
  if (state_ == client_state::closed) {
    return;
  }
  auto self = shared_from_this();
  if (flush_scheduled_) {
    loop_.keep_until_flushed(self);  // listed in the loop's write batch until it runs
  }
  state_ = client_state::closed;
  handshake_place_.release();
  std::error_code ignored;
  tick_wheel::hook::cancel();
  unwatch();
  if (auto* tls = tls_io()) {
    tls->shutdown();
  }
  socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
  socket_.close(ignored);
  if (out_) {
    out_->clear();
    if (!out_->writing()) {
      loop_.give_back(std::move(out_));
    }
  }
  std::string().swap(pending_);
  loop_.hold_unfinished(*this, unfinished_, 0);
  loop_.events().on_closed(*record_, cause, reason);
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

bool client_session::watches_silence() const {
  return listener_.heartbeat_interval.count() > 0 || listener_.idle_timeout.count() > 0;
}

void client_session::arm_timer() {
  if (state_ == client_state::closed || state_ == client_state::closing) {
    return;  // closing keeps its linger deadline
  }
  const auto period = tick_period();
  if (period.count() == 0) {
    tick_wheel::hook::cancel();
    return;
  }
  loop_.schedule(*this, std::chrono::steady_clock::now() + period);
}

void client_session::on_deadline() {
  if (state_ == client_state::closing) {
    finish(closing_cause_, *close_reason_ + " (flush timed out)");
    return;
  }
  if (state_ == client_state::handshake || state_ == client_state::deciding) {
    // Scheduled handshake_timeout after start(): the wheel never fires early.
    if (tls_ && !tls_io()->established()) {
      tls_handshake_failed(
          net::tls_failure::timeout,
          "no handshake within " + std::to_string(listener_.handshake_timeout.count()) + " ms");
    } else if (state_ == client_state::deciding) {
      reject_upgrade(close_cause::timeout, 503, "no decision from a worker in time",
                     "decision timed out");
    } else {
      destroy(close_cause::timeout, "handshake timed out");
    }
    return;
  }
  if (state_ != client_state::open) {
    return;
  }
  const auto now = std::chrono::steady_clock::now();
  if (paused_) {
    // Not read because its events wait for a worker: its silence is ours, not the client's.
    last_heard_ = now;
    missed_beats_ = 0;
  }
  const auto silent = now - last_heard_;
  if (listener_.idle_timeout.count() > 0 && silent >= listener_.idle_timeout) {
    close_with_reason(close_cause::idle_timeout, codec::ws::k_close_going_away, "idle timeout");
    return;
  }
  if (listener_.heartbeat_interval.count() > 0) {
    if (silent >= listener_.heartbeat_interval) {
      ++missed_beats_;
    }
    if (listener_.heartbeat_missed > 0 && missed_beats_ >= listener_.heartbeat_missed) {
      close_with_reason(close_cause::heartbeat_timeout, codec::ws::k_close_going_away,
                        "heartbeat timeout");
      return;
    }
    if (listener_.kind == framing::websocket) {
      auto& ping = control_scratch();
      codec::ws::encode_frame(ping, codec::ws::opcode::ping,
                              std::string_view(listener_.heartbeat_data).substr(0, 125));
      push_control(ping, false);
    } else if (!listener_.heartbeat_data.empty()) {
      auto& data = control_scratch();
      encode_into(data, listener_.kind, listener_.heartbeat_data, false);
      push_control(data, false);
    }
  }
  arm_timer();
}

}  // namespace gwx::gateway
