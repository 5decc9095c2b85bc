#include "common/net/link_stream.hpp"

#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <mutex>

#include "common/net/endpoint.hpp"
#include "common/net/tls_io.hpp"

namespace gwx {
namespace {
// One read takes at most this much (a larger frame grows the buffer). The frames of one read are
// handled before what they cause is written, so a smaller read lets the peer see the first
// replies of a burst while the rest is handled: hundreds of small events per read, not thousands.
constexpr std::size_t k_read_chunk = 16 * 1024;
// A read buffer past this, mostly empty, is given back even while a frame is unfinished.
constexpr std::size_t k_shrink_above = 1 << 20;
// Most bytes a paused link takes into its read buffer, so that a silent peer is still noticed.
constexpr std::size_t k_held_read_ahead = 16 * k_read_chunk;
// A link's writes batch many frames: each starts in a buffer of this size, and one spare of up
// to four times it is kept while the link is idle (no regrowth from 64 bytes per write).
constexpr std::size_t k_write_segment = 16 * 1024;
constexpr auto k_close_flush_limit = std::chrono::seconds(2);
// First byte of a TLS record: a handshake message (ClientHello, ServerHello) or an alert.
constexpr char k_tls_handshake_record = 0x16;
constexpr char k_tls_alert_record = 0x15;

// What an operator should check after a failed TLS handshake, by its cause.
const char* tls_hint(net::tls_failure f) {
  switch (f) {
    case net::tls_failure::not_tls:
      return " (the peer does not speak TLS: set the same --link-tls-* options on both ends)";
    case net::tls_failure::bad_client_certificate:
      return " (the peer's certificate is not signed by --link-tls-ca)";
    case net::tls_failure::no_client_certificate:
      return " (the peer sent no certificate: it needs --link-tls-cert and --link-tls-key)";
    default:
      return "";
  }
}

// Why a client end's TLS link failed after its handshake when the server refused its certificate:
// the same words whether the alert arrived or the connection closed first, so that retries keep
// one reason (and one log line).
constexpr const char* k_certificate_refused =
    "TLS: the peer refused this end's certificate (is --link-tls-cert signed by the CA in the "
    "peer's --link-tls-ca?)";

std::string failure_reason(const net::tls_io& io, const char* prefix) {
  if (io.failure() == net::tls_failure::certificate_rejected) {
    return k_certificate_refused;
  }
  return prefix + io.failure_detail() + tls_hint(io.failure());
}

// Reads and drops whatever the peer sent, so that closing does not reset the connection before
// the peer read what this end sent last.
void drain_socket(int fd) {
  char scrap[256];
  while (::recv(fd, scrap, sizeof scrap, MSG_DONTWAIT) > 0) {
  }
}

// OpenSSL writes to the descriptor with write(2), which raises SIGPIPE when the peer is gone, and
// SIGPIPE's default action ends the process. Ignored once (unless the program handles it itself):
// the write then fails with EPIPE and the link closes with that reason.
void ignore_sigpipe() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction current {};
    if (::sigaction(SIGPIPE, nullptr, &current) == 0 && current.sa_handler == SIG_DFL) {
      ::signal(SIGPIPE, SIG_IGN);
    }
  });
}

}  // namespace

/// The TLS of a link: OpenSSL on the socket's descriptor, and where the stream is in it.
struct link_stream::tls_layer {
  tls_layer(net::ssl_ptr ssl, int fd)
      : io(std::move(ssl), fd), server(SSL_is_server(io.native()) == 1) {}

  net::tls_io io;
  bool server;
  /// The peer's first bytes were looked at (a plain link's preamble is refused).
  bool peeked = false;
  /// Some of the link itself arrived (the peer accepted this end's certificate).
  bool plaintext_seen = false;
  bool waiting_read = false;
  bool waiting_write = false;
  /// The buffers of a write OpenSSL has not finished (it must see them again).
  const std::vector<asio::const_buffer>* pending = nullptr;
};

link_stream::link_stream(asio::ip::tcp::socket socket, std::size_t max_frame, std::size_t send_cap,
                         net::ssl_ptr tls)
    : socket_(std::move(socket)),
      timer_(socket_.get_executor()),
      limits_{max_frame, max_frame},
      out_(send_cap) {
  std::error_code ec;
  const auto ep = socket_.remote_endpoint(ec);
  remote_ = ec ? "?" : format_host_port(ep.address().to_string(), ep.port());
  socket_.set_option(asio::ip::tcp::no_delay(true), ec);
  last_heard_ = std::chrono::steady_clock::now();
  if (tls) {
    // OpenSSL reads and writes the descriptor itself and must never block on it.
    socket_.non_blocking(true, ec);
    ignore_sigpipe();
    tls_ = std::make_unique<tls_layer>(std::move(tls), socket_.native_handle());
  }
}

link_stream::~link_stream() = default;

void link_stream::start(frame_handler on_frame, close_handler on_close) {
  on_frame_ = std::move(on_frame);
  on_close_ = std::move(on_close);
  out_.force(link_codec::preamble());
  if (tls_) {
    // The handshake first (a client sends its hello now); the preamble waits for it.
    tls_on_ready();
    return;
  }
  do_write();
  do_read();
}

void link_stream::authenticated() {
  active_limits_ = limits_;
  // Before this a peer gets only handshake frames: small buffers (the send side too).
  out_.set_min_segment(k_write_segment);
  idle_spare_ = 4 * k_write_segment;
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
    if (self->read_paused_ && !self->read_ahead()) {
      return;  // the link closed
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

bool link_stream::read_ahead() {
  if (!read_parked_) {
    return true;  // a read is still under way: what it reads counts as ever
  }
  if (read_len_ >= k_held_read_ahead) {
    // The peer may have more to say, but it cannot: this end took all it holds while paused.
    // Its silence proves nothing then.
    last_heard_ = std::chrono::steady_clock::now();
    return true;
  }
  // Paused: the frames are not handled, but what the peer sent (its pongs too) is taken into
  // the read buffer, so a peer that goes silent is still noticed.
  if (read_buf_.size() < k_held_read_ahead) {
    read_buf_.resize(k_held_read_ahead);
  }
  while (read_len_ < k_held_read_ahead) {
    std::size_t n = 0;
    if (tls_) {
      const auto status =
          tls_->io.read(read_buf_.data() + read_len_, k_held_read_ahead - read_len_, n);
      if (status == net::tls_status::want_read || status == net::tls_status::want_write) {
        return true;
      }
      if (status != net::tls_status::ok) {
        shutdown(status == net::tls_status::closed ? std::string("peer closed the link")
                                                   : failure_reason(tls_->io, "TLS: "));
        return false;
      }
    } else {
      const auto got = ::recv(socket_.native_handle(), read_buf_.data() + read_len_,
                              k_held_read_ahead - read_len_, MSG_DONTWAIT);
      if (got == 0) {
        shutdown("peer closed the link");
        return false;
      }
      if (got < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
          return true;
        }
        shutdown(std::strerror(errno));
        return false;
      }
      n = static_cast<std::size_t>(got);
    }
    read_len_ += n;
    last_heard_ = std::chrono::steady_clock::now();
  }
  return true;
}

void link_stream::prepare_read_space() {
  if (read_len_ == 0 && read_buf_.size() > k_read_chunk) {
    // A large frame came and went: give its memory back.
    std::string().swap(read_buf_);
  } else if (read_buf_.size() > k_shrink_above && read_len_ < read_buf_.size() / 8) {
    // The same on a busy link, whose reads mostly end inside a frame (read_len_ is never 0
    // there): the unfinished part moves to a buffer its size.
    std::string smaller(std::max(k_read_chunk, 2 * read_len_), '\0');
    std::memcpy(smaller.data(), read_buf_.data(), read_len_);
    read_buf_.swap(smaller);
  }
  if (read_buf_.size() - read_len_ < k_read_chunk / 4) {
    read_buf_.resize(std::max(read_buf_.size() * 2, read_len_ + k_read_chunk));
  }
}

void link_stream::pause_reading(bool paused) {
  read_paused_ = paused;
  if (paused || !read_parked_ || !open_) {
    return;
  }
  read_parked_ = false;
  last_heard_ = std::chrono::steady_clock::now();
  // From a task: the caller may be handling a frame of this very stream.
  asio::post(socket_.get_executor(), [self = shared_from_this()] {
    // First the frames read ahead while paused (none: nothing happens).
    if (!self->open_ || !self->consume()) {
      return;
    }
    if (self->read_paused_) {
      self->read_parked_ = true;  // paused again by one of those frames
      return;
    }
    if (self->tls_) {
      // OpenSSL may hold decrypted bytes already: read them before waiting for the socket.
      self->tls_on_ready();
    } else {
      self->do_read();
    }
  });
}

void link_stream::do_read() {
  if (read_paused_) {
    read_parked_ = true;
    return;
  }
  if (tls_) {
    tls_wait(asio::socket_base::wait_read);
    return;
  }
  prepare_read_space();
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
  if (consume()) {
    do_read();
  }
}

bool link_stream::consume() {
  std::size_t offset = 0;
  if (!preamble_seen_) {
    const auto r = link_codec::check_preamble(std::string_view(read_buf_.data(), read_len_));
    if (r.status == codec::decode_status::error) {
      shutdown(r.reason);
      return false;
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
      return false;
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
    return false;
  }
  if (offset > 0) {
    // Only the unfinished frame moves: the buffer is longer than what was read.
    std::memmove(read_buf_.data(), read_buf_.data() + offset, read_len_ - offset);
    read_len_ -= offset;
  }
  return true;
}

template <class Encode>
net::send_status link_stream::queue(std::size_t size, const Encode& encode) {
  if (!open_) {
    return net::send_status::dropped;
  }
  if (over_frame_limit(size)) {
    return net::send_status::dropped;
  }
  auto* out = out_.reserve(size);
  if (out == nullptr) {
    shutdown("peer is not reading: " + std::to_string(out_.bytes()) +
             " bytes queued towards it (the cap)");
    return net::send_status::dropped;
  }
  encode(*out);
  const auto status = out_.commit();
  write_soon();
  return status;
}

bool link_stream::over_frame_limit(std::size_t size) {
  if (size <= limits_.max_frame) {
    return false;
  }
  if (too_large_.count()) {
    spdlog::error(
        "link {}: a frame of {} bytes not sent: over the link's frame limit of {} bytes ({} such "
        "frames so far)",
        remote_, size, limits_.max_frame, too_large_.total());
  }
  return true;
}

net::send_status link_stream::send(const link::v2::Frame& frame, std::string_view payload) {
  if (!open_) {
    return net::send_status::dropped;
  }
  // encoded_size() computes the header's cached size: encode() reuses it.
  return queue(link_codec::encoded_size(frame, payload.size()),
               [&](std::string& out) { link_codec::encode(out, frame, payload); });
}

net::send_status link_stream::send_to_client(std::string_view client_id, bool binary,
                                             std::string_view payload) {
  return queue(link_codec::send_to_client_size(client_id, binary, payload.size()),
               [&](std::string& out) {
                 link_codec::encode_send_to_client(out, client_id, binary, payload);
               });
}

net::send_status link_stream::send_encoded(std::string_view wire) {
  if (!open_ || over_frame_limit(wire.size())) {
    return net::send_status::dropped;
  }
  const auto status = out_.push(wire);
  if (status == net::send_status::dropped) {
    shutdown("peer is not reading: " + std::to_string(out_.bytes()) +
             " bytes queued towards it (the cap)");
    return status;
  }
  write_soon();
  return status;
}

void link_stream::write_soon() {
  if (out_.writing() || write_due_) {
    return;
  }
  write_due_ = true;
  asio::post(socket_.get_executor(), [self = shared_from_this()] {
    self->write_due_ = false;
    if (self->open_ && !self->out_.writing()) {
      self->do_write();
    }
  });
}

void link_stream::on_drained() {
  out_.shrink(idle_spare_);
  if (closing_) {
    shutdown(close_reason_);
  }
}

void link_stream::do_write() {
  if (tls_) {
    tls_write();
    return;
  }
  const auto& bufs = out_.gather();
  if (bufs.empty()) {
    on_drained();
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
  if (!out_.writing() && !write_due_) {
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

void link_stream::drop_handlers() {
  on_frame_ = nullptr;
  on_close_ = nullptr;
}

void link_stream::shutdown(const std::string& reason) {
  if (!open_) {
    return;
  }
  open_ = false;
  std::error_code ignored;
  timer_.cancel();
  if (tls_) {
    tls_->io.shutdown();
  }
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

void link_stream::tls_wait(asio::socket_base::wait_type what) {
  const bool read = what == asio::socket_base::wait_read;
  bool& waiting = read ? tls_->waiting_read : tls_->waiting_write;
  if (waiting || !open_) {
    return;
  }
  waiting = true;
  socket_.async_wait(what, [self = shared_from_this(), read](std::error_code ec) {
    if (!self->open_) {
      return;
    }
    (read ? self->tls_->waiting_read : self->tls_->waiting_write) = false;
    if (ec) {
      self->shutdown(ec.message());
      return;
    }
    if (read) {
      self->tls_on_ready();
    } else if (!self->tls_->io.established()) {
      self->tls_on_ready();
    } else {
      self->tls_write();
    }
  });
}

bool link_stream::tls_handshake() {
  if (!tls_->peeked) {
    // A plain link starts with its preamble, a TLS peer with a handshake record: look before
    // OpenSSL reads, so a plain peer is told what is wrong instead of "wrong version number".
    char first[link_codec::k_preamble_size];
    const auto n = ::recv(socket_.native_handle(), first, sizeof first, MSG_PEEK | MSG_DONTWAIT);
    if (n > 0) {
      tls_->peeked = true;
      if (first[0] != k_tls_handshake_record && first[0] != k_tls_alert_record) {
        tls_refuse_plain_peer(std::string_view(first, static_cast<std::size_t>(n)));
        return false;
      }
    } else if (n == 0) {
      shutdown("peer closed the link before the TLS handshake");
      return false;
    } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
      shutdown(std::strerror(errno));
      return false;
    } else if (tls_->server) {
      tls_wait(asio::socket_base::wait_read);
      return false;
    }
    // Nothing yet and this end is the client: it speaks first.
  }
  switch (tls_->io.handshake()) {
    case net::tls_status::ok:
      return true;
    case net::tls_status::want_read:
      tls_wait(asio::socket_base::wait_read);
      return false;
    case net::tls_status::want_write:
      tls_wait(asio::socket_base::wait_write);
      return false;
    default:
      drain_socket(socket_.native_handle());
      shutdown(failure_reason(tls_->io, "TLS handshake failed: "));
      return false;
  }
}

void link_stream::tls_on_ready() {
  if (!open_) {
    return;
  }
  if (!tls_->io.established()) {
    if (!tls_handshake()) {
      return;
    }
    // The preamble and whatever was queued meanwhile leave now.
    tls_write();
    if (!open_) {
      return;
    }
  }
  for (;;) {
    if (read_paused_) {
      read_parked_ = true;
      return;
    }
    prepare_read_space();
    std::size_t n = 0;
    const auto status =
        tls_->io.read(read_buf_.data() + read_len_, read_buf_.size() - read_len_, n);
    if (status == net::tls_status::ok) {
      read_len_ += n;
      tls_->plaintext_seen = true;
      last_heard_ = std::chrono::steady_clock::now();
      if (!consume()) {
        return;
      }
      continue;
    }
    if (status == net::tls_status::want_read) {
      break;
    }
    if (status == net::tls_status::want_write) {
      tls_wait(asio::socket_base::wait_write);
      break;
    }
    if (status == net::tls_status::closed && !tls_->server && !tls_->plaintext_seen) {
      // TLS 1.3: the client's handshake is over before the server checked its certificate; a
      // server that refused it closes before sending a single byte of the link.
      shutdown(k_certificate_refused);
    } else if (status == net::tls_status::closed) {
      shutdown("peer closed the link");
    } else {
      shutdown(failure_reason(tls_->io, "TLS: "));
    }
    return;
  }
  tls_wait(asio::socket_base::wait_read);
}

void link_stream::tls_write() {
  if (!open_ || tls_->waiting_write || !tls_->io.established()) {
    return;
  }
  for (;;) {
    if (tls_->pending == nullptr) {
      const auto& bufs = out_.gather();
      if (bufs.empty()) {
        on_drained();
        return;
      }
      tls_->pending = &bufs;
    }
    const auto status = tls_->io.write(*tls_->pending);
    if (status == net::tls_status::ok) {
      tls_->pending = nullptr;
      out_.written();
      continue;
    }
    if (status == net::tls_status::want_write || status == net::tls_status::want_read) {
      tls_wait(asio::socket_base::wait_write);
      return;
    }
    shutdown(status == net::tls_status::closed ? std::string("peer closed the link")
                                               : failure_reason(tls_->io, "TLS: "));
    return;
  }
}

void link_stream::tls_refuse_plain_peer(std::string_view first_bytes) {
  const auto magic = link_codec::preamble().substr(0, 6);
  const bool plain_link =
      first_bytes.substr(0, magic.size()) == magic.substr(0, first_bytes.size());
  std::string reason = plain_link ? "the peer speaks a plain link, this end requires TLS"
                                  : "the peer does not speak TLS, this end requires it";
  reason += " (set the same --link-tls-* options on both ends)";
  if (!tls_->server && plain_link) {
    // The plain server (a gateway) spoke first. Our hello still goes out, so that it sees a TLS
    // peer and can say so in its log; the handshake then fails on its preamble, as expected.
    tls_->io.handshake();
  }
  if (!tls_->server || !plain_link) {
    drain_socket(socket_.native_handle());
    shutdown(reason);
    return;
  }
  // A plain client (worker, push client) waits for our preamble and challenge: tell it why in a
  // Reject frame it understands.
  drain_socket(socket_.native_handle());
  auto note = std::make_shared<std::string>(link_codec::preamble());
  link::v2::Frame reject;
  reject.mutable_reject()->set_reason(
      "TLS is required on this link: set --link-tls-cert, --link-tls-key and --link-tls-ca on "
      "this end too");
  link_codec::encode(*note, reject);
  closing_ = true;
  asio::async_write(socket_, asio::buffer(*note),
                    [self = shared_from_this(), note, reason](std::error_code, std::size_t) {
                      self->shutdown(reason);
                    });
}

}  // namespace gwx
