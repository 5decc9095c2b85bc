#include "tools/bench/reference_server.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <stdexcept>

#include "common/codec/ws_handshake.hpp"
#include "tools/bench/wire.hpp"

namespace gwx::bench {
namespace {

constexpr std::size_t k_read_size = 256 * 1024;
constexpr std::size_t k_max_head = 8192;
constexpr int k_max_events = 256;
constexpr int k_max_iov = 64;

std::string errno_text(const char* what) {
  return std::string(what) + ": " + std::strerror(errno);
}

/// Bytes waiting for a socket that was full: a shared buffer and how far it was written.
struct chunk {
  std::shared_ptr<const std::string> bytes;
  std::size_t offset = 0;
};

struct listener_state;

struct conn {
  int fd = -1;
  listener_state* owner = nullptr;
  std::size_t index = 0;  // in owner->conns
  bool open = false;      // WebSocket: upgraded; TCP: from the start
  bool want_out = false;  // EPOLLOUT armed
  bool dead = false;
  std::optional<message_decoder> decoder;  // in place: an idle connection is one allocation
  std::string in;                          // unconsumed bytes of a message not yet whole
  std::vector<chunk> out;
  std::size_t out_head = 0;
};

struct listener_state {
  reference_listener cfg;
  int fd = -1;
  std::vector<conn*> conns;  // every client, for broadcast
};

// epoll data: listeners and the signal fd are told apart from connections by a tag.
constexpr std::uint64_t k_tag_listener = 1ULL << 62;
constexpr std::uint64_t k_tag_signal = 1ULL << 61;

}  // namespace

struct reference_server::impl {
  impl(const std::vector<reference_listener>& listeners, std::size_t max_message)
      : max_message_(max_message), rbuf_(k_read_size) {
    epfd_ = epoll_create1(EPOLL_CLOEXEC);
    if (epfd_ < 0) {
      throw std::runtime_error(errno_text("epoll_create1"));
    }
    for (const auto& l : listeners) {
      auto st = std::make_unique<listener_state>();
      st->cfg = l;
      st->fd = bind_listener(l.url);
      listeners_.push_back(std::move(st));
    }
    reserve_fd_ = open("/dev/null", O_RDONLY | O_CLOEXEC);
  }

  ~impl() {
    for (auto& l : listeners_) {
      for (auto* c : l->conns) {
        ::close(c->fd);
        delete c;
      }
      ::close(l->fd);
    }
    if (reserve_fd_ >= 0) {
      ::close(reserve_fd_);
    }
    ::close(epfd_);
  }
  impl(const impl&) = delete;
  impl& operator=(const impl&) = delete;

  static int bind_listener(const target_url& url) {
    sockaddr_storage addr{};
    socklen_t len = 0;
    int family = AF_INET;
    auto* v4 = reinterpret_cast<sockaddr_in*>(&addr);
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&addr);
    if (inet_pton(AF_INET, url.host.c_str(), &v4->sin_addr) == 1) {
      v4->sin_family = AF_INET;
      v4->sin_port = htons(url.port);
      len = sizeof *v4;
    } else if (inet_pton(AF_INET6, url.host.c_str(), &v6->sin6_addr) == 1) {
      family = AF_INET6;
      v6->sin6_family = AF_INET6;
      v6->sin6_port = htons(url.port);
      len = sizeof *v6;
    } else {
      throw std::runtime_error(url.to_string() + ": the host must be an IP address");
    }
    const int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      throw std::runtime_error(errno_text("socket"));
    }
    const int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0 || listen(fd, 4096) != 0) {
      const auto why = errno_text(url.to_string().c_str());
      ::close(fd);
      throw std::runtime_error(why);
    }
    return fd;
  }

  std::vector<std::string> bound() const {
    std::vector<std::string> out;
    for (const auto& l : listeners_) {
      sockaddr_storage addr{};
      socklen_t len = sizeof addr;
      getsockname(l->fd, reinterpret_cast<sockaddr*>(&addr), &len);
      auto url = l->cfg.url;
      url.port =
          ntohs(addr.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port
                                           : reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
      out.push_back(std::string(l->cfg.role == reference_role::echo ? "echo " : "broadcast ") +
                    url.to_string());
    }
    return out;
  }

  void run() {
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &mask, nullptr);
    const int sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    add(sfd, EPOLLIN, k_tag_signal);
    for (std::size_t i = 0; i < listeners_.size(); ++i) {
      add(listeners_[i]->fd, EPOLLIN, k_tag_listener | i);
    }
    epoll_event events[k_max_events];
    bool running = true;
    while (running) {
      const int n = epoll_wait(epfd_, events, k_max_events, -1);
      if (n < 0) {
        if (errno == EINTR) {
          continue;
        }
        throw std::runtime_error(errno_text("epoll_wait"));
      }
      for (int i = 0; i < n; ++i) {
        const auto tag = events[i].data.u64;
        if (tag == k_tag_signal) {
          running = false;
        } else if ((tag & k_tag_listener) != 0) {
          accept_all(*listeners_[tag & ~k_tag_listener]);
        } else {
          auto* c = static_cast<conn*>(events[i].data.ptr);
          if (c->dead) {
            continue;
          }
          if ((events[i].events & EPOLLOUT) != 0) {
            write_queued(*c);
          }
          if (!c->dead && (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) != 0) {
            on_readable(*c);
          }
        }
      }
      reap();
    }
    ::close(sfd);
  }

 private:
  void add(int fd, std::uint32_t ev, std::uint64_t tag) {
    epoll_event e{};
    e.events = ev;
    e.data.u64 = tag;
    epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &e);
  }

  void set_events(conn& c, bool want_out) {
    if (c.want_out == want_out) {
      return;
    }
    c.want_out = want_out;
    epoll_event e{};
    e.events = EPOLLIN | (want_out ? EPOLLOUT : 0U);
    e.data.ptr = &c;
    epoll_ctl(epfd_, EPOLL_CTL_MOD, c.fd, &e);
  }

  void accept_all(listener_state& l) {
    for (;;) {
      const int fd = accept4(l.fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EMFILE || errno == ENFILE) {
          // Out of descriptors: take the pending connection and drop it, or epoll spins on it.
          ::close(reserve_fd_);
          const int drop = accept(l.fd, nullptr, nullptr);
          if (drop >= 0) {
            ::close(drop);
          }
          reserve_fd_ = open("/dev/null", O_RDONLY | O_CLOEXEC);
          continue;
        }
        return;  // EAGAIN, or an error of that one connection
      }
      const int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      auto* c = new conn;
      c->fd = fd;
      c->owner = &l;
      if (l.cfg.url.proto != protocol::ws) {
        open_conn(*c);
      }
      epoll_event e{};
      e.events = EPOLLIN;
      e.data.ptr = c;
      epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &e);
    }
  }

  void open_conn(conn& c) {
    c.open = true;
    c.decoder.emplace(c.owner->cfg.url.proto, side::server, max_message_);
    c.index = c.owner->conns.size();
    c.owner->conns.push_back(&c);
  }

  void kill(conn& c) {
    if (c.dead) {
      return;
    }
    c.dead = true;
    epoll_ctl(epfd_, EPOLL_CTL_DEL, c.fd, nullptr);
    ::close(c.fd);
    if (c.open) {
      auto& v = c.owner->conns;
      v[c.index] = v.back();
      v[c.index]->index = c.index;
      v.pop_back();
    }
    dead_.push_back(&c);
  }

  void reap() {
    for (auto* c : dead_) {
      delete c;
    }
    dead_.clear();
  }

  void on_readable(conn& c) {
    // Bytes left from an earlier read come first: append to them; else read into the shared
    // buffer and keep only what a message still lacks.
    char* data = nullptr;
    std::size_t size = 0;
    if (c.in.empty()) {
      const ssize_t n = ::read(c.fd, rbuf_.data(), rbuf_.size());
      if (n <= 0) {
        if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
          kill(c);
        }
        return;
      }
      data = rbuf_.data();
      size = static_cast<std::size_t>(n);
    } else {
      const std::size_t old = c.in.size();
      c.in.resize(old + k_read_size);
      const ssize_t n = ::read(c.fd, c.in.data() + old, k_read_size);
      if (n <= 0) {
        c.in.resize(old);
        if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
          kill(c);
        }
        return;
      }
      c.in.resize(old + static_cast<std::size_t>(n));
      data = c.in.data();
      size = c.in.size();
    }
    std::size_t used = c.open ? 0 : handle_handshake(c, data, size);
    if (c.dead) {
      return;
    }
    if (c.open) {
      used += handle_messages(c, data + used, size - used);
    }
    if (c.dead) {
      return;
    }
    if (data == rbuf_.data()) {
      c.in.assign(data + used, size - used);
    } else {
      c.in.erase(0, used);
    }
    if (c.in.capacity() > k_read_size && c.in.empty()) {
      std::string().swap(c.in);
    }
    if (!c.open && c.in.size() > k_max_head) {
      kill(c);
    }
  }

  /// A parser made for each attempt on all the bytes so far (the parser's contract allows it):
  /// nothing of the handshake outlives it, so it leaves no holes between connections' memory.
  std::size_t handle_handshake(conn& c, const char* data, std::size_t size) {
    std::string response;
    std::size_t consumed = 0;
    {
      codec::ws::handshake_parser parser(k_max_head);
      const auto r = parser.parse(std::string_view(data, size));
      using kind = codec::ws::handshake_result::kind;
      if (r.type == kind::need_more) {
        return 0;
      }
      const auto& path = c.owner->cfg.url.path;
      if (r.type == kind::error) {
        response = codec::ws::make_error_response(r.http_status, r.reason);
      } else if (path != "/" && path.substr(0, path.find('?')) != parser.request().path) {
        response = codec::ws::make_error_response(404, "no WebSocket endpoint at this path");
      } else {
        response = codec::ws::make_upgrade_response(parser.accept_key());
        consumed = r.consumed;
      }
    }
    send_now(c, response);
    if (consumed == 0) {
      kill(c);
      return 0;
    }
    open_conn(c);
    return consumed;
  }

  /// Decodes every whole message of [data, data+size); returns the bytes consumed.
  std::size_t handle_messages(conn& c, char* data, std::size_t size) {
    const auto proto = c.owner->cfg.url.proto;
    const bool broadcast = c.owner->cfg.role == reference_role::broadcast;
    wbuf_.clear();
    std::size_t off = 0;
    bool close_after = false;
    while (!close_after) {
      const auto ev = c.decoder->next(data + off, size - off);
      off += ev.consumed;  // need_more too: whole fragments already taken in
      if (ev.type == wire_event::kind::need_more) {
        break;
      }
      switch (ev.type) {
        case wire_event::kind::message:
          encode_message(wbuf_, proto, side::server, ev.data, ev.binary, 0);
          break;
        case wire_event::kind::ping:
          if (broadcast) {
            // The pong is for the sender alone.
            std::string pong;
            encode_control(pong, side::server, codec::ws::opcode::pong, ev.data, 0);
            send_now(c, pong);
          } else {
            encode_control(wbuf_, side::server, codec::ws::opcode::pong, ev.data, 0);
          }
          break;
        case wire_event::kind::close:
        case wire_event::kind::error:
          close_after = true;
          break;
        case wire_event::kind::skip:
        case wire_event::kind::need_more:
          break;
      }
    }
    if (!wbuf_.empty()) {
      if (broadcast) {
        deliver_to_all(*c.owner);
      } else {
        send_now(c, wbuf_);
      }
    }
    if (close_after && !c.dead) {
      std::string bye;
      codec::ws::encode_close(bye, codec::ws::k_close_normal);
      send_now(c, bye);
      kill(c);
    }
    return off;
  }

  /// Writes `bytes` at once if nothing is queued; queues what the socket does not take.
  void send_now(conn& c, std::string_view bytes) {
    std::size_t done = 0;
    if (c.out_head == c.out.size()) {
      done = write_some(c, bytes);
      if (c.dead || done == bytes.size()) {
        return;
      }
    }
    queue(c, std::make_shared<const std::string>(bytes.substr(done)), 0);
  }

  /// Sends wbuf_ to every client of the listener: written directly where the socket takes it,
  /// else one shared copy queued for all that need it.
  void deliver_to_all(listener_state& l) {
    std::shared_ptr<const std::string> shared;
    for (std::size_t i = 0; i < l.conns.size(); ++i) {
      conn& c = *l.conns[i];
      std::size_t done = 0;
      if (c.out_head == c.out.size()) {
        done = write_some(c, wbuf_);
        if (c.dead) {
          --i;  // kill() moved the last connection here
          continue;
        }
        if (done == wbuf_.size()) {
          continue;
        }
      }
      if (!shared) {
        shared = std::make_shared<const std::string>(wbuf_);
      }
      queue(c, shared, done);
    }
  }

  std::size_t write_some(conn& c, std::string_view bytes) {
    std::size_t done = 0;
    while (done < bytes.size()) {
      const ssize_t n = ::send(c.fd, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EINTR) {
          continue;
        }
        if (errno != EAGAIN) {
          kill(c);
        }
        break;
      }
      done += static_cast<std::size_t>(n);
    }
    return done;
  }

  void queue(conn& c, std::shared_ptr<const std::string> bytes, std::size_t offset) {
    c.out.push_back(chunk{std::move(bytes), offset});
    set_events(c, true);
  }

  void write_queued(conn& c) {
    while (c.out_head < c.out.size()) {
      iovec iov[k_max_iov];
      int n = 0;
      for (std::size_t i = c.out_head; i < c.out.size() && n < k_max_iov; ++i, ++n) {
        const auto& ch = c.out[i];
        iov[n].iov_base = const_cast<char*>(ch.bytes->data() + ch.offset);
        iov[n].iov_len = ch.bytes->size() - ch.offset;
      }
      ssize_t w = ::writev(c.fd, iov, n);
      if (w < 0) {
        if (errno == EINTR) {
          continue;
        }
        if (errno != EAGAIN) {
          kill(c);
        }
        return;
      }
      while (w > 0) {
        auto& ch = c.out[c.out_head];
        const auto left = static_cast<ssize_t>(ch.bytes->size() - ch.offset);
        if (w >= left) {
          w -= left;
          ch.bytes.reset();
          ++c.out_head;
        } else {
          ch.offset += static_cast<std::size_t>(w);
          w = 0;
        }
      }
    }
    c.out.clear();
    c.out.shrink_to_fit();
    c.out_head = 0;
    set_events(c, false);
  }

  std::size_t max_message_;
  int epfd_ = -1;
  int reserve_fd_ = -1;
  std::vector<std::unique_ptr<listener_state>> listeners_;
  std::vector<char> rbuf_;
  std::string wbuf_;  // replies of one read
  std::vector<conn*> dead_;
};

reference_server::reference_server(const std::vector<reference_listener>& listeners,
                                   std::size_t max_message)
    : impl_(std::make_unique<impl>(listeners, max_message)) {}

reference_server::~reference_server() = default;

std::vector<std::string> reference_server::bound() const {
  return impl_->bound();
}

void reference_server::run() {
  impl_->run();
}

}  // namespace gwx::bench
