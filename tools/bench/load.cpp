#include "tools/bench/load.hpp"

#include <sys/socket.h>

#include <asio.hpp>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "common/net/batched_io.hpp"
#include "common/net/read_poller.hpp"
#include "tools/bench/latency_histogram.hpp"
#include "tools/bench/payload.hpp"
#include "tools/bench/tls_idle.hpp"
#include "tools/bench/wire.hpp"

namespace gwx::bench {
namespace {

using clock = std::chrono::steady_clock;

enum phase : int { k_warmup, k_measure, k_stop };

// How many connections each loop keeps in the middle of connect + handshake at once, so a large
// idle run does not overflow the server's accept backlog (a dropped SYN costs a 1 s retransmit).
constexpr std::size_t k_max_opening = 128;
constexpr auto k_poll = std::chrono::milliseconds(5);

/// A counter with one writer (its loop's thread) and readers anywhere.
class counter {
 public:
  void add(std::uint64_t n = 1) {
    v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  std::uint64_t get() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> v_{0};
};

/// What every loop shares with the controlling thread.
struct shared_state {
  explicit shared_state(const load_options& o) : opt(o), epoch(clock::now()) {}

  std::uint64_t now_ns() const {
    return static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(clock::now() - epoch).count());
  }
  bool measuring() const { return phase.load(std::memory_order_relaxed) == k_measure; }
  bool stopping() const { return phase.load(std::memory_order_relaxed) == k_stop; }

  const load_options& opt;
  clock::time_point epoch;
  asio::ip::tcp::endpoint endpoint;
  std::atomic<int> phase{k_warmup};
  std::atomic<std::size_t> opened{0};
  std::atomic<std::size_t> failed{0};
  std::atomic<std::uint64_t> delivered{0};  // fanout: deliveries to all receivers, whole run
  std::atomic<bool> told_unbatched{false};

  /// Keeps the first error of the run (any thread).
  void note_error(const std::string& what) {
    const std::lock_guard lock(error_mutex);
    if (first_error.empty()) {
      first_error = what;
    }
  }
  std::string get_first_error() {
    const std::lock_guard lock(error_mutex);
    return first_error;
  }

 private:
  std::mutex error_mutex;
  std::string first_error;
};

class connection;

/// One event loop on its own thread, with the statistics of the connections it runs.
struct loop {
  loop(shared_state& s, std::uint64_t seed);

  /// Makes the receives listed by this turn's on_poll_ready() calls in one call, handles them,
  /// then makes the sends they caused in one more.
  void run_turn();

  void error(const std::string& what) {
    ++errors;
    shared.note_error(what);
  }
  /// Starts opening queued connections, at most k_max_opening at a time.
  void open_more();
  /// A connection finished opening (or failed to).
  void open_done(bool ok) {
    --opening;
    (ok ? shared.opened : shared.failed).fetch_add(1);
    open_more();
  }

  /// Keeps `c` alive while its socket is watched by `reads`; unwatched() hands it back.
  void watched(std::shared_ptr<connection> c);
  std::shared_ptr<connection> unwatched(connection& c);

  shared_state& shared;
  asio::io_context io{1};
  // Open sockets are read as gwx's gateway reads its clients: watched once in a level-triggered
  // epoll set, one recv per report, no re-arm (common/net/read_poller.hpp). Writes are a send
  // straight from the handler; only what the socket does not take waits for Asio. Against a
  // single-process server the generator needs about a core, so its cost per message is part of
  // every rate it measures (docs/benchmarks.md, the cross-check).
  net::read_poller<connection> reads{io};
  // With io_uring, what one turn of `reads` found readable is received in one call and what
  // that causes sent in another, as the gateway does with its clients: at about a microsecond
  // per system call here, a recv and a send per message made the generator the bottleneck of
  // an echo at 1 in flight (docs/benchmarks.md).
  net::batched_io batch;
  bool in_turn = false;  // the reads of a turn are handled: sends are listed in `batch`
  std::vector<std::shared_ptr<connection>> live;  // watched by `reads`; index in connection
  std::thread thread;
  fast_random rng;
  std::string scratch;  // payload being built
  std::vector<std::shared_ptr<connection>> conns;
  std::size_t next_to_open = 0;
  std::size_t opening = 0;
  // Statistics, written by this loop's thread only.
  latency_histogram hist;
  std::uint64_t measured = 0;
  std::uint64_t errors = 0;
  counter sent;
  counter answered;
};

/// A client connection: connect, WebSocket upgrade if any, then framed messages both ways.
/// Replies are handled a read at a time and what they cause is written in one write.
class connection : public std::enable_shared_from_this<connection> {
 public:
  /// Where this connection is in its loop's `live` list (watched), or npos.
  std::size_t live_index = static_cast<std::size_t>(-1);

  connection(loop& l) : loop_(l), socket_(l.io) {
    const auto& opt = l.shared.opt;
    decoder_ = std::make_unique<message_decoder>(opt.url.proto, side::client, opt.max_message,
                                                 opt.url.proto == protocol::tcp_raw ? opt.size : 0);
    buf_.resize(opt.read_buffer);
  }
  virtual ~connection() = default;
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;

  /// Connects and upgrades; on_open() once usable, on_failed() if that does not happen.
  void open() {
    socket_.async_connect(loop_.shared.endpoint, [self = shared_from_this()](std::error_code ec) {
      if (ec) {
        self->fail_open("connect: " + ec.message());
        return;
      }
      self->socket_.set_option(asio::ip::tcp::no_delay(true), ec);
      self->socket_.non_blocking(true, ec);
      if (ec || !self->loop_.reads.watch(*self, self->socket_.native_handle())) {
        self->fail_open("cannot watch the socket: " +
                        (ec ? ec.message() : std::string(std::strerror(errno))));
        return;
      }
      self->loop_.watched(self);
      if (self->loop_.shared.opt.url.proto == protocol::ws) {
        self->pending_ =
            make_upgrade_request(self->loop_.shared.opt.url,
                                 self->loop_.rng.next() * 0x9e3779b97f4a7c15ULL, self->ws_key_);
        self->flush();
      } else {
        self->opened();
      }
    });
  }

  /// The loop's read set found the socket readable: one read, what it holds handled.
  void on_poll_ready() {
    if (closed_) {
      return;
    }
    const auto self = shared_from_this();  // what the read causes may unwatch it
    if (len_ == buf_.size()) {
      buf_.resize(buf_.size() * 2);
    }
    const asio::mutable_buffer free(buf_.data() + len_, buf_.size() - len_);
    if (loop_.batch.batched()) {
      loop_.batch.add_recv(socket_.native_handle(), free, reinterpret_cast<std::uintptr_t>(this));
      return;  // received() once the turn's receives are made
    }
    const ssize_t n = ::recv(socket_.native_handle(), free.data(), free.size(), 0);
    received(n < 0 ? -errno : n);
  }

  /// What a receive gave: bytes, 0 (the server closed) or -errno.
  void received(long n) {
    if (closed_) {
      return;
    }
    if (n > 0) {
      on_read(static_cast<std::size_t>(n));
      return;
    }
    if (n == -EAGAIN || n == -EWOULDBLOCK || n == -EINTR) {
      return;
    }
    if (closing_) {
      shut();
      return;
    }
    broken(n == 0 ? "server closed the connection"
                  : std::string("read: ") + std::strerror(static_cast<int>(-n)));
  }

  /// What a send listed by flush() gave: bytes taken or -errno.
  void sent(long n) {
    send_listed_ = false;
    if (!closed_) {
      after_send(n);
    }
  }

  /// Sends one benchmark message (after `prefix`); with `batch`, only queues it for flush().
  void send_payload(std::uint32_t seq, std::uint64_t now, bool batch = false) {
    auto& s = loop_.scratch;
    s.assign(loop_.shared.opt.prefix);
    payload::write(s, loop_.shared.opt.size, seq, now);
    encode_message(pending_, loop_.shared.opt.url.proto, side::client, s, loop_.shared.opt.binary,
                   loop_.rng.next());
    loop_.sent.add();
    if (!in_batch_ && !batch) {
      flush();
    }
  }

  /// Closes gracefully (WebSocket: a close frame first); no on_closed() call.
  void finish() {
    if (closed_) {
      return;
    }
    if (loop_.shared.opt.url.proto == protocol::ws && is_open_) {
      encode_control(pending_, side::client, codec::ws::opcode::close, "\x03\xe8",
                     loop_.rng.next());
      closing_ = true;
      flush();
      return;
    }
    shut();
  }

  bool is_open() const { return is_open_; }

 protected:
  /// Called once the connection is usable.
  virtual void on_open() {}
  /// One message from the server; `now` is when its read completed.
  virtual void on_message(std::string_view data, std::uint64_t now) = 0;
  /// Called when connecting failed.
  virtual void on_open_failed() {}
  /// Called when an open connection broke or the server closed it.
  virtual void on_broken() {}

  loop& loop_;

 private:
  void opened() {
    is_open_ = true;
    on_open();
  }

  void fail_open(const std::string& why) {
    loop_.error(why);
    shut();
    on_open_failed();
  }

  void broken(const std::string& why) {
    if (closed_) {
      return;
    }
    if (!is_open_) {
      fail_open(why);
      return;
    }
    loop_.error(why);
    shut();
    on_broken();
  }

  void shut() {
    closed_ = true;
    if (live_index != static_cast<std::size_t>(-1)) {
      loop_.reads.forget(*this, socket_.native_handle());
      // Released on a later turn: the caller may still be in this object's handlers.
      asio::post(loop_.io, [keep = loop_.unwatched(*this)] {});
    }
    std::error_code ec;
    socket_.close(ec);
  }

  void on_read(std::size_t n) {
    len_ += n;
    const auto now = loop_.shared.now_ns();
    std::size_t off = 0;
    if (!is_open_) {
      try {
        off = check_upgrade_response(std::string_view(buf_.data(), len_), ws_key_);
      } catch (const std::exception& e) {
        fail_open(e.what());
        return;
      }
      if (off == 0) {
        return;
      }
      opened();
    }
    in_batch_ = true;
    while (!closed_) {
      const auto ev = decoder_->next(buf_.data() + off, len_ - off);
      off += ev.consumed;  // need_more too: whole fragments already taken in
      if (ev.type == wire_event::kind::need_more) {
        break;
      }
      switch (ev.type) {
        case wire_event::kind::message:
          on_message(ev.data, now);
          break;
        case wire_event::kind::ping:
          encode_control(pending_, side::client, codec::ws::opcode::pong, ev.data,
                         loop_.rng.next());
          break;
        case wire_event::kind::close:
          broken("server sent close " + std::to_string(ev.close_code));
          break;
        case wire_event::kind::error:
          broken("bad data from the server: " + std::string(ev.data));
          break;
        case wire_event::kind::skip:
        case wire_event::kind::need_more:
          break;
      }
    }
    in_batch_ = false;
    if (closed_) {
      return;
    }
    std::memmove(buf_.data(), buf_.data() + off, len_ - off);
    len_ -= off;
    flush();
  }

 protected:
  /// Writes what is pending: straight away as far as the socket takes it, the rest through Asio.
  void flush() {
    if (writing_ || send_listed_ || pending_.empty() || closed_) {
      return;
    }
    if (loop_.in_turn) {
      // pending_ is not touched again before the batch runs: this connection's reads of the
      // turn are handled, and nothing else of this loop runs until the batch is made.
      send_listed_ = true;
      loop_.batch.add_send(socket_.native_handle(), asio::buffer(pending_),
                           reinterpret_cast<std::uintptr_t>(this));
      return;
    }
    const ssize_t n = ::send(socket_.native_handle(), pending_.data(), pending_.size(),
                             MSG_DONTWAIT | MSG_NOSIGNAL);
    after_send(n < 0 ? -errno : n);
  }

 private:
  /// Bytes a send took (or -errno): drops them; what the socket did not take goes through Asio.
  void after_send(long n) {
    if (n < 0 && n != -EAGAIN && n != -EWOULDBLOCK && n != -EINTR) {
      broken(std::string("write: ") + std::strerror(static_cast<int>(-n)));
      return;
    }
    if (n > 0) {
      pending_.erase(0, static_cast<std::size_t>(n));
    }
    if (pending_.empty()) {
      if (closing_) {
        shut();
      }
      return;
    }
    writing_ = true;
    std::swap(pending_, writing_buf_);
    asio::async_write(socket_, asio::buffer(writing_buf_),
                      [self = shared_from_this()](std::error_code ec, std::size_t) {
                        self->writing_ = false;
                        self->writing_buf_.clear();
                        if (ec) {
                          self->broken("write: " + ec.message());
                          return;
                        }
                        if (self->closing_ && self->pending_.empty()) {
                          self->shut();
                          return;
                        }
                        self->flush();
                      });
  }

 private:
  asio::ip::tcp::socket socket_;
  std::unique_ptr<message_decoder> decoder_;
  std::vector<char> buf_;
  std::size_t len_ = 0;
  std::string pending_;      // encoded, not yet handed to a write
  std::string writing_buf_;  // the write in flight
  std::string ws_key_;
  bool is_open_ = false;
  bool in_batch_ = false;
  bool writing_ = false;
  bool send_listed_ = false;  // a send of pending_ waits in the loop's batch
  bool closing_ = false;
  bool closed_ = false;
};

loop::loop(shared_state& s, std::uint64_t seed) : shared(s), batch(s.opt.io_uring), rng(seed) {
  if (batch.batched()) {
    reads.after_each_turn([this] { run_turn(); });
  } else if (s.opt.io_uring && !s.told_unbatched.exchange(true)) {
    std::fprintf(stderr,
                 "gwx-bench: the load generator makes one recv and one send per "
                 "connection and turn: %s\n",
                 batch.why_not_batched().c_str());
  }
}

void loop::run_turn() {
  // The connections listed stay alive through both runs: one that closes meanwhile is released
  // on a later turn (connection::shut()).
  in_turn = true;
  batch.run([](std::uint64_t tag, long result) {
    reinterpret_cast<connection*>(static_cast<std::uintptr_t>(tag))->received(result);
  });
  in_turn = false;
  batch.run([](std::uint64_t tag, long result) {
    reinterpret_cast<connection*>(static_cast<std::uintptr_t>(tag))->sent(result);
  });
}

void loop::watched(std::shared_ptr<connection> c) {
  c->live_index = live.size();
  live.push_back(std::move(c));
}

std::shared_ptr<connection> loop::unwatched(connection& c) {
  const auto i = c.live_index;
  c.live_index = static_cast<std::size_t>(-1);
  auto out = std::move(live[i]);
  if (i + 1 != live.size()) {
    live[i] = std::move(live.back());
    live[i]->live_index = i;
  }
  live.pop_back();
  return out;
}

void loop::open_more() {
  while (opening < k_max_opening && next_to_open < conns.size()) {
    ++opening;
    conns[next_to_open++]->open();
  }
}

// ---- echo

class echo_connection final : public connection {
 public:
  explicit echo_connection(loop& l)
      : connection(l), sent_at_(std::max<std::size_t>(1, l.shared.opt.inflight), 0) {}

  void start() {
    const auto now = loop_.shared.now_ns();
    for (std::size_t i = 0; i < sent_at_.size(); ++i) {
      send_next(now);
    }
  }

 private:
  void on_open() override { loop_.open_done(true); }
  void on_open_failed() override { loop_.open_done(false); }

  void send_next(std::uint64_t now) {
    sent_at_[next_send_ % sent_at_.size()] = now;
    send_payload(next_send_++, now);
  }

  void on_message(std::string_view data, std::uint64_t now) override {
    loop_.answered.add();
    const auto f = payload::read(data, loop_.shared.opt.size);
    if (!f.ok) {
      loop_.error("reply is not a message that was sent (" + std::to_string(data.size()) +
                  " bytes)");
    } else if (f.seq != next_recv_) {
      loop_.error("reply " + std::to_string(f.seq) + " where " + std::to_string(next_recv_) +
                  " was due (lost or out of order)");
      next_recv_ = f.seq + 1;
    } else if (f.sent_ns != sent_at_[f.seq % sent_at_.size()]) {
      loop_.error("reply " + std::to_string(f.seq) + " differs from the message sent");
      ++next_recv_;
    } else {
      ++next_recv_;
      if (loop_.shared.measuring()) {
        loop_.hist.record(now - f.sent_ns);
        ++loop_.measured;
      }
    }
    if (!loop_.shared.stopping()) {
      send_next(now);
    }
  }

  std::vector<std::uint64_t> sent_at_;  // by seq % inflight
  std::uint32_t next_send_ = 0;
  std::uint32_t next_recv_ = 0;
};

// ---- fanout

class fanout_sender final : public connection {
 public:
  fanout_sender(loop& l, std::size_t receivers) : connection(l), receivers_(receivers) {}

  /// Sends while fewer than `inflight` messages are not yet delivered to every receiver.
  void pump() {
    if (loop_.shared.stopping() || receivers_ == 0) {
      return;
    }
    const auto done = loop_.shared.delivered.load() / receivers_;
    const auto now = loop_.shared.now_ns();
    while (next_.get() < done + loop_.shared.opt.inflight) {
      send_payload(static_cast<std::uint32_t>(next_.get()), now, true);
      next_.add();
    }
    flush();
  }

  /// Messages sent so far (any thread).
  std::uint64_t sent() const { return next_.get(); }

 private:
  void on_open() override { loop_.open_done(true); }
  void on_open_failed() override { loop_.open_done(false); }
  // The sender gets its own broadcasts (and, from a worker app, command replies): not counted.
  void on_message(std::string_view, std::uint64_t) override {}

  std::size_t receivers_;
  counter next_;
};

class fanout_receiver final : public connection {
 public:
  fanout_receiver(loop& l, std::shared_ptr<fanout_sender> sender, loop& sender_loop,
                  std::size_t receivers)
      : connection(l),
        sender_(std::move(sender)),
        sender_loop_(sender_loop),
        receivers_(receivers) {}

 private:
  void on_open() override { loop_.open_done(true); }
  void on_open_failed() override { loop_.open_done(false); }

  void on_message(std::string_view data, std::uint64_t now) override {
    const auto f = payload::read(data, loop_.shared.opt.size);
    if (!f.ok) {
      loop_.error("delivery is not a message that was sent (" + std::to_string(data.size()) +
                  " bytes)");
      return;
    }
    if (f.seq != expected_) {
      loop_.error("delivery " + std::to_string(f.seq) + " where " + std::to_string(expected_) +
                  " was due (lost or out of order)");
    } else if (loop_.shared.measuring()) {
      loop_.hist.record(now - f.sent_ns);
      ++loop_.measured;
    }
    expected_ = f.seq + 1;
    const auto total = loop_.shared.delivered.fetch_add(1) + 1;
    if (receivers_ != 0 && total % receivers_ == 0) {
      asio::post(sender_loop_.io, [s = sender_] { s->pump(); });
    }
  }

  std::shared_ptr<fanout_sender> sender_;
  loop& sender_loop_;
  std::size_t receivers_;
  std::uint32_t expected_ = 0;
};

// ---- connect

class connect_slot;

class connect_connection final : public connection {
 public:
  connect_connection(loop& l, connect_slot& slot, std::uint64_t started)
      : connection(l), slot_(slot), started_(started) {}

 private:
  void on_open() override { send_payload(0, loop_.shared.now_ns()); }
  void on_open_failed() override;
  void on_broken() override;
  void on_message(std::string_view data, std::uint64_t now) override;

  connect_slot& slot_;
  std::uint64_t started_;
  bool done_ = false;
};

/// One of the concurrent connect loops.
class connect_slot {
 public:
  explicit connect_slot(loop& l) : loop_(l), retry_(l.io) {}

  void start() {
    if (loop_.shared.stopping()) {
      return;
    }
    auto c = std::make_shared<connect_connection>(loop_, *this, loop_.shared.now_ns());
    loop_.sent.add();
    c->open();
  }

  void done() {
    loop_.answered.add();
    start();
  }

  void failed() {
    loop_.answered.add();
    // Do not spin on a server that refuses: try again a little later.
    retry_.expires_after(std::chrono::milliseconds(10));
    retry_.async_wait([this](std::error_code ec) {
      if (!ec) {
        start();
      }
    });
  }

 private:
  loop& loop_;
  asio::steady_timer retry_;
};

void connect_connection::on_open_failed() {
  slot_.failed();
}

void connect_connection::on_broken() {
  if (!done_) {
    done_ = true;
    slot_.failed();
  }
}

void connect_connection::on_message(std::string_view data, std::uint64_t now) {
  if (done_) {
    return;
  }
  done_ = true;
  const auto f = payload::read(data, loop_.shared.opt.size);
  if (!f.ok || f.seq != 0) {
    loop_.error("reply is not the message sent (" + std::to_string(data.size()) + " bytes)");
  } else if (loop_.shared.measuring()) {
    loop_.hist.record(now - started_);
    ++loop_.measured;
  }
  finish();
  slot_.done();
}

// ---- the run

class runner {
 public:
  explicit runner(const load_options& opt) : opt_(opt), shared_(opt) {
    if (opt.size < payload::k_min_size) {
      throw std::invalid_argument("--size must be at least " + std::to_string(payload::k_min_size));
    }
    asio::io_context resolve_io;
    asio::ip::tcp::resolver resolver(resolve_io);
    std::error_code ec;
    const auto results = resolver.resolve(opt.url.host, std::to_string(opt.url.port), ec);
    if (ec || results.empty()) {
      throw std::runtime_error("cannot resolve " + opt.url.host + ": " + ec.message());
    }
    shared_.endpoint = *results.begin();
    const unsigned n = std::max(1U, opt.threads);
    for (unsigned i = 0; i < n; ++i) {
      loops_.push_back(std::make_unique<loop>(shared_, 0x1234567ULL * (i + 1) + 99));
    }
  }

  ~runner() { stop(); }
  runner(const runner&) = delete;
  runner& operator=(const runner&) = delete;

  shared_state& shared() { return shared_; }
  std::vector<std::unique_ptr<loop>>& loops() { return loops_; }

  /// Makes `n` connections of type C, spread over the loops.
  template <typename C>
  void add_connections(std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
      auto& l = *loops_[i % loops_.size()];
      l.conns.push_back(std::make_shared<C>(l));
    }
  }

  void start_threads() {
    for (auto& l : loops_) {
      l->thread = std::thread([lp = l.get()] {
        auto guard = asio::make_work_guard(lp->io);
        lp->io.run();
      });
    }
  }

  /// Opens every queued connection; throws unless all open (when `all_needed`).
  void open_all(std::size_t total, bool all_needed) {
    if (total == 0) {
      return;
    }
    for (auto& l : loops_) {
      asio::post(l->io, [lp = l.get()] { lp->open_more(); });
    }
    const auto deadline =
        clock::now() + std::chrono::milliseconds(static_cast<long>(opt_.open_timeout_s * 1000));
    while (shared_.opened.load() + shared_.failed.load() < total && clock::now() < deadline) {
      std::this_thread::sleep_for(k_poll);
    }
    const auto opened = shared_.opened.load();
    if (all_needed && opened < total) {
      stop();
      std::string why = first_error();
      throw std::runtime_error("opened " + std::to_string(opened) + " of " + std::to_string(total) +
                               " connections to " + opt_.url.to_string() +
                               (why.empty() ? "" : ": " + why));
    }
  }

  /// Runs the warm-up and the measured window; fills the timing and CPU fields of `r`.
  void measure(run_result& r) {
    std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<long>(opt_.warmup_s * 1000)));
    const auto before = take_cpu_snapshot(opt_.pids);
    const auto t0 = clock::now();
    shared_.phase = k_measure;
    std::this_thread::sleep_for(
        std::chrono::milliseconds(static_cast<long>(opt_.duration_s * 1000)));
    shared_.phase = k_stop;
    const auto t1 = clock::now();
    const auto after = take_cpu_snapshot(opt_.pids);
    r.seconds = std::chrono::duration<double>(t1 - t0).count();
    cpu_before_ = before;
    cpu_after_ = after;
  }

  /// Warm-up, measured window, drain until `done()`, stop: the timing and CPU part of a result.
  template <typename F>
  run_result window(std::size_t connections, F done) {
    run_result r;
    r.connections = connections;
    measure(r);
    drain(done);
    stop();
    return r;
  }

  /// Waits until `done()` or the drain time passed. First lets every loop finish the handler it
  /// may be running when the window closed, so no message is sent after this starts.
  template <typename F>
  void drain(F done) {
    std::atomic<std::size_t> passed{0};
    for (auto& l : loops_) {
      asio::post(l->io, [&passed] { passed.fetch_add(1); });
    }
    while (passed.load() < loops_.size()) {
      std::this_thread::sleep_for(k_poll);
    }
    const auto deadline =
        clock::now() + std::chrono::milliseconds(static_cast<long>(opt_.drain_s * 1000));
    while (!done() && clock::now() < deadline) {
      std::this_thread::sleep_for(k_poll);
    }
  }

  void stop() {
    for (auto& l : loops_) {
      l->io.stop();
    }
    for (auto& l : loops_) {
      if (l->thread.joinable()) {
        l->thread.join();
      }
    }
  }

  std::uint64_t sent() const {
    std::uint64_t n = 0;
    for (const auto& l : loops_) {
      n += l->sent.get();
    }
    return n;
  }
  std::uint64_t answered() const {
    std::uint64_t n = 0;
    for (const auto& l : loops_) {
      n += l->answered.get();
    }
    return n;
  }

  std::string first_error() { return shared_.get_first_error(); }

  /// Fills the statistics of `r` (after stop()).
  void collect(run_result& r, const std::string& mode) {
    latency_histogram all;
    for (const auto& l : loops_) {
      all.merge(l->hist);
      r.messages += l->measured;
      r.errors += l->errors;
    }
    r.mode = mode;
    r.protocol = protocol_name(opt_.url.proto);
    r.url = opt_.url.to_string();
    r.size = opt_.size;
    r.inflight = opt_.inflight;
    r.threads = std::max(1U, opt_.threads);
    r.first_error = first_error();
    r.rate = r.seconds > 0 ? static_cast<double>(r.messages) / r.seconds : 0;
    r.p50_ns = all.quantile(0.5);
    r.p99_ns = all.quantile(0.99);
    r.p999_ns = all.quantile(0.999);
    const double wall = cpu_after_.wall_us - cpu_before_.wall_us;
    for (std::size_t i = 0; i < opt_.pids.size(); ++i) {
      pid_figures p;
      p.name = opt_.pids[i].name;
      p.pid = opt_.pids[i].pid;
      if (cpu_before_.cpu_us[i] && cpu_after_.cpu_us[i]) {
        p.cpu_us = *cpu_after_.cpu_us[i] - *cpu_before_.cpu_us[i];
        if (r.messages > 0) {
          p.cpu_us_per_msg = *p.cpu_us / static_cast<double>(r.messages);
        }
        if (wall > 0) {
          p.cpu_percent = 100.0 * *p.cpu_us / wall;
        }
      }
      r.pids.push_back(p);
    }
    const double self = cpu_after_.self_cpu_us - cpu_before_.self_cpu_us;
    if (r.messages > 0) {
      r.self_cpu_us_per_msg = self / static_cast<double>(r.messages);
    }
    if (wall > 0) {
      r.self_cpu_percent = 100.0 * self / wall;
    }
  }

 private:
  const load_options& opt_;
  shared_state shared_;
  std::vector<std::unique_ptr<loop>> loops_;
  cpu_snapshot cpu_before_;
  cpu_snapshot cpu_after_;
};

/// What was expected but never came after the drain time counts as lost, and as errors.
void count_lost(run_result& r, std::uint64_t expected, std::uint64_t arrived, const char* what) {
  r.lost = expected > arrived ? expected - arrived : 0;
  r.errors += r.lost;
  if (r.lost > 0 && r.first_error.empty()) {
    r.first_error = std::to_string(r.lost) + " " + what;
  }
}

template <typename F>
void on_each_loop(runner& run, F f) {
  for (auto& l : run.loops()) {
    asio::post(l->io, [lp = l.get(), f] { f(*lp); });
  }
}

}  // namespace

run_result run_echo(const load_options& opt) {
  runner run(opt);
  run.add_connections<echo_connection>(opt.connections);
  run.start_threads();
  run.open_all(opt.connections, true);
  on_each_loop(run, [](loop& l) {
    for (auto& c : l.conns) {
      static_cast<echo_connection&>(*c).start();
    }
  });
  auto r = run.window(opt.connections, [&] { return run.answered() >= run.sent(); });
  r.sent = run.sent();
  run.collect(r, "echo");
  count_lost(r, r.sent, run.answered(), "message(s) never answered");
  return r;
}

run_result run_fanout(const load_options& opt) {
  runner run(opt);
  auto& loops = run.loops();
  auto& sender_loop = *loops[0];
  auto sender = std::make_shared<fanout_sender>(sender_loop, opt.connections);
  std::vector<std::shared_ptr<fanout_receiver>> receivers;
  for (std::size_t i = 0; i < opt.connections; ++i) {
    auto& l = *loops[i % loops.size()];
    auto c = std::make_shared<fanout_receiver>(l, sender, sender_loop, opt.connections);
    receivers.push_back(c);
    l.conns.push_back(c);
  }
  // The sender connects last, so that it is not among the receivers already connected when a
  // server greets newcomers.
  sender_loop.conns.push_back(sender);
  run.start_threads();
  run.open_all(opt.connections + 1, true);
  asio::post(sender_loop.io, [sender] { sender->pump(); });
  // The sender stops at once; wait for what it sent to reach everyone.
  auto r = run.window(opt.connections, [&] {
    return run.shared().delivered.load() >= sender->sent() * opt.connections;
  });
  r.sent = sender->sent();
  run.collect(r, "fanout");
  count_lost(r, r.sent * opt.connections, run.shared().delivered.load(),
             "delivery(ies) never arrived");
  return r;
}

run_result run_connect(const load_options& opt) {
  runner run(opt);
  auto& loops = run.loops();
  std::vector<std::unique_ptr<connect_slot>> slots;
  for (std::size_t i = 0; i < opt.connections; ++i) {
    slots.push_back(std::make_unique<connect_slot>(*loops[i % loops.size()]));
  }
  run.start_threads();
  for (std::size_t i = 0; i < slots.size(); ++i) {
    asio::post(loops[i % loops.size()]->io, [s = slots[i].get()] { s->start(); });
  }
  auto r = run.window(opt.connections, [&] { return run.answered() >= run.sent(); });
  r.sent = run.sent();
  run.collect(r, "connect");
  r.inflight = 1;
  return r;
}

void hold_idle(const load_options& opt,
               const std::function<void(std::size_t, std::size_t, const std::string&)>& keep_open) {
  if (opt.url.tls) {
    hold_tls_idle(opt, keep_open);
    return;
  }
  runner run(opt);
  run.add_connections<echo_connection>(opt.connections);
  run.start_threads();
  run.open_all(opt.connections, false);
  keep_open(run.shared().opened.load(), run.shared().failed.load(), run.first_error());
  run.stop();
}

}  // namespace gwx::bench
