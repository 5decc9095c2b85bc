/* gwx-xload: a single-threaded WebSocket load generator on raw epoll, written from RFC 6455
 * alone and sharing no code with gwx, to cross-check gwx-bench's figures.
 *
 *   gwx-xload echo URL   [--connections N] [--inflight K] [--size S] [options]
 *   gwx-xload fanout URL [--receivers R] [--inflight K] [--prefix TEXT] [options]
 *
 * echo: N clients each keep K messages outstanding; every reply must be the message sent, byte
 * for byte, in order. fanout: R receivers, then one sender that keeps K messages not yet
 * delivered to every receiver; each receiver must get every message, in order (the sender's own
 * copies and any other reply to it are read and ignored). Each message is S printable bytes:
 * a sequence number, the send time and filler derived from the sequence number.
 *
 * Timeline: --warmup seconds not counted, --duration seconds measured, then no more sends and
 * --drain-timeout seconds for what is outstanding to arrive (what does not is lost). --pid
 * NAME=PID (repeatable): that process's utime+stime over the measured window, per message
 * (echo) or per delivery (fanout), from /proc/PID/stat; the generator's own as [xload].
 * One result line (--json: one JSON object). Exit status 0; 1 on any lost, mismatched or
 * out-of-order message, failed or broken connection; 2 on a bad command line. */
#define _GNU_SOURCE
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "xws.h"

enum { k_max_pids = 16, k_max_events = 512, k_handshake_max = 8192, k_read_chunk = 65536 };
enum { k_min_size = 22, k_max_prefix = 256, k_max_open_at_once = 256 };

/* ---- options */

typedef struct {
  const char* name;
  pid_t pid;
  double before, after;
} watched;

static struct {
  int fanout;
  char host[256];
  char port[16];
  char path[512];
  size_t connections;
  size_t receivers;
  size_t inflight;
  size_t size;
  double duration, warmup, drain, open_timeout;
  size_t max_message;
  const char* prefix;
  size_t prefix_len;
  int json;
  watched pids[k_max_pids];
  int npids;
} opt = {.connections = 100,
         .receivers = 900,
         .inflight = 1,
         .size = 32,
         .duration = 5,
         .warmup = 1,
         .drain = 5,
         .open_timeout = 60,
         .max_message = 1u << 20,
         .prefix = ""};

/* ---- latency histogram: 64 linear sub-buckets per power of two of nanoseconds (< 1.6 %) */

enum { k_sub_bits = 6, k_sub = 1 << k_sub_bits, k_buckets = (64 - k_sub_bits + 1) * k_sub };
static uint64_t g_hist[k_buckets];
static uint64_t g_hist_count;

static void hist_record(uint64_t v) {
  size_t idx;
  if (v < k_sub) {
    idx = (size_t)v;
  } else {
    const int e = 63 - __builtin_clzll(v);
    idx = (size_t)(e - k_sub_bits + 1) * k_sub + ((v >> (e - k_sub_bits)) & (k_sub - 1));
  }
  ++g_hist[idx];
  ++g_hist_count;
}

static double hist_quantile_ms(double q) {
  if (g_hist_count == 0) {
    return 0;
  }
  uint64_t want = (uint64_t)(q * (double)g_hist_count + 0.999999);
  if (want == 0) {
    want = 1;
  }
  uint64_t seen = 0;
  for (size_t i = 0; i < k_buckets; ++i) {
    seen += g_hist[i];
    if (seen >= want) {
      if (i < k_sub) {
        return (double)i / 1e6;
      }
      const int e = (int)(i / k_sub) + k_sub_bits - 1;
      const double lo = (double)((uint64_t)(k_sub + i % k_sub) << (e - k_sub_bits));
      const double width = (double)(1ULL << (e - k_sub_bits));
      return (lo + width / 2) / 1e6;
    }
  }
  return 0;
}

/* ---- run state */

enum role { ROLE_ECHO, ROLE_RECEIVER, ROLE_SENDER };
enum state { ST_CONNECTING, ST_HANDSHAKE, ST_OPEN, ST_DEAD };

typedef struct {
  int fd;
  enum role role;
  enum state state;
  uint32_t events; /* registered with epoll */
  char key[25];    /* Sec-WebSocket-Key sent */
  uint8_t* in;     /* received, not yet parsed */
  size_t in_len, in_cap;
  uint8_t* out; /* to write: [out_off, out_len) */
  size_t out_off, out_len, out_cap;
  uint8_t* frag; /* a fragmented message being reassembled */
  size_t frag_len;
  int frag_opcode;
  uint64_t next_send, next_recv; /* echo: sequence numbers; receiver: next_recv only */
  uint64_t* sent_at;             /* echo: send time of seq, at seq % inflight */
} conn;

static int g_ep;
static struct addrinfo* g_addr;
static conn* g_conns;
static size_t g_nconns;
static uint64_t g_t0; /* the run's time origin (messages carry time since it) */
static int g_measuring, g_stopping;
static uint64_t g_measured; /* replies (echo) or deliveries (fanout) in the window */
static uint64_t g_errors;
static char g_first_error[256];
static size_t g_opened, g_failed_open;
static uint64_t g_rng[2];

/* fanout: one ring slot per message outstanding */
static uint64_t g_sent;       /* messages the sender sent */
static uint64_t g_done;       /* messages delivered to every live receiver */
static uint64_t* g_f_sent_at; /* at seq % inflight */
static uint32_t* g_remaining; /* receivers that still miss seq, at seq % inflight */
static size_t g_live_receivers;
static conn* g_sender;
static uint64_t g_deliveries; /* whole run */

static void error_at(conn* c, const char* fmt, ...) {
  ++g_errors;
  if (g_first_error[0] == '\0') {
    va_list ap;
    va_start(ap, fmt);
    int n = snprintf(g_first_error, sizeof g_first_error,
                     "connection %zu: ", c ? (size_t)(c - g_conns) : (size_t)0);
    if (n < 0 || (size_t)n >= sizeof g_first_error) {
      n = 0;
    }
    vsnprintf(g_first_error + n, sizeof g_first_error - (size_t)n, fmt, ap);
    va_end(ap);
  }
}

static uint64_t rng_next(void) {
  /* xorshift128+, seeded from getrandom(): masking keys a proxy cannot predict in practice */
  uint64_t s1 = g_rng[0];
  const uint64_t s0 = g_rng[1];
  g_rng[0] = s0;
  s1 ^= s1 << 23;
  g_rng[1] = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26);
  return g_rng[1] + s0;
}

static void* xmalloc(size_t n) {
  void* p = calloc(1, n);
  if (!p) {
    fputs("gwx-xload: out of memory\n", stderr);
    exit(1);
  }
  return p;
}

/* ---- messages: "SSSSSSSS:TTTTTTTTTTTT:" (hex sequence number and send time) then filler */

static void write_hex(uint8_t* p, uint64_t v, int digits) {
  static const char k_hex[] = "0123456789abcdef";
  for (int i = digits - 1; i >= 0; --i) {
    p[i] = (uint8_t)k_hex[v & 15];
    v >>= 4;
  }
}

static void make_message(uint8_t* p, uint64_t seq, uint64_t sent_ns) {
  write_hex(p, seq, 8);
  p[8] = ':';
  write_hex(p + 9, sent_ns, 12);
  p[21] = ':';
  for (size_t i = k_min_size; i < opt.size; ++i) {
    p[i] = (uint8_t)('a' + (seq + i) % 26);
  }
}

/* ---- connection I/O */

static void watch(conn* c, uint32_t events) {
  if (c->events == events) {
    return;
  }
  struct epoll_event e = {.events = events, .data.ptr = c};
  epoll_ctl(g_ep, EPOLL_CTL_MOD, c->fd, &e);
  c->events = events;
}

static void fanout_receiver_gone(conn* c);

static void kill_conn(conn* c) {
  if (c->state == ST_DEAD) {
    return;
  }
  const int was_open = c->state == ST_OPEN;
  c->state = ST_DEAD;
  epoll_ctl(g_ep, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
  if (c->role == ROLE_RECEIVER && was_open) {
    fanout_receiver_gone(c);
  }
}

/** Appends a masked frame (prefix + payload as one message) to c's output. 0 if it would pass
 * the output bound (a defect of this program: the bound holds what may be outstanding). */
static int queue_frame(conn* c, int opcode, const uint8_t* prefix, size_t prefix_len,
                       const uint8_t* p, size_t n) {
  const size_t len = prefix_len + n;
  if (c->out_off == c->out_len) {
    c->out_off = c->out_len = 0;
  }
  if (c->out_len + 14 + len > c->out_cap) {
    if (c->out_off > 0) {
      memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
      c->out_len -= c->out_off;
      c->out_off = 0;
    }
    if (c->out_len + 14 + len > c->out_cap) {
      error_at(c, "output buffer full (%zu bytes)", c->out_cap);
      kill_conn(c);
      return 0;
    }
  }
  uint8_t mask[4];
  const uint64_t r = rng_next();
  memcpy(mask, &r, 4);
  uint8_t* at = c->out + c->out_len;
  at += xws_write_header(at, opcode, len, mask);
  if (prefix_len > 0) {
    memcpy(at, prefix, prefix_len);
  }
  memcpy(at + prefix_len, p, n);
  xws_mask(at, len, mask, 0);
  c->out_len = (size_t)(at + len - c->out);
  return 1;
}

static void flush_out(conn* c) {
  if (c->state == ST_DEAD) {
    return;
  }
  while (c->out_off < c->out_len) {
    const ssize_t w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        watch(c, EPOLLIN | EPOLLOUT);
        return;
      }
      if (errno == EINTR) {
        continue;
      }
      error_at(c, "send: %s", strerror(errno));
      kill_conn(c);
      return;
    }
    c->out_off += (size_t)w;
  }
  c->out_off = c->out_len = 0;
  watch(c, EPOLLIN);
}

/** 1 if `p` is message c->next_recv sent at `t`, byte for byte; else an error, and `c` closed. */
static int is_message(conn* c, const uint8_t* p, size_t n, uint64_t t, const char* what) {
  uint8_t want[opt.size];
  make_message(want, c->next_recv, t);
  if (n == opt.size && memcmp(p, want, n) == 0) {
    return 1;
  }
  error_at(c, "%s %llu is not the message sent (%zu bytes: %.*s)", what,
           (unsigned long long)c->next_recv, n, (int)(n < k_min_size ? n : k_min_size),
           (const char*)p);
  kill_conn(c);
  return 0;
}

/* ---- echo */

static void echo_send(conn* c, uint64_t now) {
  uint8_t msg[opt.size];
  const uint64_t t = now - g_t0;
  c->sent_at[c->next_send % opt.inflight] = t;
  make_message(msg, c->next_send, t);
  if (queue_frame(c, XWS_TEXT, NULL, 0, msg, opt.size)) {
    ++c->next_send;
  }
}

static void echo_reply(conn* c, const uint8_t* p, size_t n, uint64_t now) {
  if (c->next_recv == c->next_send) {
    error_at(c, "a reply (%zu bytes) with nothing outstanding", n);
    kill_conn(c);
    return;
  }
  const uint64_t t = c->sent_at[c->next_recv % opt.inflight];
  if (!is_message(c, p, n, t, "reply")) {
    return;
  }
  ++c->next_recv;
  if (g_measuring) {
    ++g_measured;
    hist_record(now - g_t0 - t);
  }
  if (!g_stopping) {
    echo_send(c, now);
  }
}

/* ---- fanout */

static void advance_done(void) {
  while (g_done < g_sent && g_remaining[g_done % opt.inflight] == 0) {
    ++g_done;
  }
}

static void fanout_pump(uint64_t now) {
  conn* s = g_sender;
  if (!s || s->state != ST_OPEN || g_stopping || g_live_receivers == 0) {
    return;
  }
  uint8_t msg[opt.size];
  while (g_sent - g_done < opt.inflight) {
    const uint64_t t = now - g_t0;
    make_message(msg, g_sent, t);
    if (!queue_frame(s, XWS_TEXT, (const uint8_t*)opt.prefix, opt.prefix_len, msg, opt.size)) {
      return;
    }
    g_f_sent_at[g_sent % opt.inflight] = t;
    g_remaining[g_sent % opt.inflight] = (uint32_t)g_live_receivers;
    ++g_sent;
  }
  flush_out(s);
}

static void fanout_receiver_gone(conn* c) {
  --g_live_receivers;
  for (uint64_t s = c->next_recv; s < g_sent; ++s) {
    --g_remaining[s % opt.inflight];
  }
  advance_done();
}

static void fanout_delivery(conn* c, const uint8_t* p, size_t n, uint64_t now) {
  if (c->next_recv >= g_sent) {
    error_at(c, "a delivery (%zu bytes) of nothing sent", n);
    kill_conn(c);
    return;
  }
  const uint64_t t = g_f_sent_at[c->next_recv % opt.inflight];
  if (!is_message(c, p, n, t, "delivery")) {
    return;
  }
  --g_remaining[c->next_recv % opt.inflight];
  ++c->next_recv;
  ++g_deliveries;
  if (g_measuring) {
    ++g_measured;
    hist_record(now - g_t0 - t);
  }
}

/* ---- frames */

static void on_message(conn* c, const uint8_t* p, size_t n, uint64_t now) {
  switch (c->role) {
    case ROLE_ECHO:
      echo_reply(c, p, n, now);
      break;
    case ROLE_RECEIVER:
      fanout_delivery(c, p, n, now);
      break;
    case ROLE_SENDER:
      break; /* its own copies and command replies */
  }
}

/** Parses the frames in c->in; returns bytes consumed (the connection may be dead after). */
static size_t parse_frames(conn* c, uint64_t now) {
  size_t at = 0;
  while (c->state == ST_OPEN) {
    xws_header h;
    const int r = xws_parse_header(c->in + at, c->in_len - at, &h);
    if (r == XWS_NEED_MORE) {
      break;
    }
    const int control = h.opcode >= 0x8;
    if (r == XWS_BAD || h.rsv != 0 || h.masked || h.opcode > XWS_PONG ||
        (!control && h.opcode > XWS_BINARY) || (control && (!h.fin || h.length > 125))) {
      error_at(c, "a frame RFC 6455 forbids (byte0=0x%02x byte1=0x%02x)", c->in[at], c->in[at + 1]);
      kill_conn(c);
      break;
    }
    if (!control && h.length > opt.max_message - c->frag_len) {
      error_at(c, "a message over %zu bytes", opt.max_message);
      kill_conn(c);
      break;
    }
    if (!control && (h.opcode == XWS_CONT) != (c->frag_opcode != 0)) {
      error_at(c, "a continuation frame out of place");
      kill_conn(c);
      break;
    }
    if (c->in_len - at < h.header_size + h.length) {
      /* The frame, and the byte on_readable keeps free: at most --max-message + 15. */
      const size_t need = h.header_size + (size_t)h.length + 1;
      if (need > c->in_cap) {
        memmove(c->in, c->in + at, c->in_len - at);
        c->in_len -= at;
        at = 0;
        uint8_t* grown = realloc(c->in, need);
        if (!grown) {
          fputs("gwx-xload: out of memory\n", stderr);
          exit(1);
        }
        c->in = grown;
        c->in_cap = need;
      }
      break;
    }
    const uint8_t* payload = c->in + at + h.header_size;
    const size_t len = (size_t)h.length;
    at += h.header_size + len;
    if (control) {
      if (h.opcode == XWS_PING) {
        queue_frame(c, XWS_PONG, NULL, 0, payload, len);
      } else if (h.opcode == XWS_CLOSE) {
        error_at(c, "the server closed the connection (close frame, %zu bytes)", len);
        kill_conn(c);
      }
      continue;
    }
    if (h.fin && h.opcode != XWS_CONT) {
      on_message(c, payload, len, now);
      continue;
    }
    uint8_t* grown = realloc(c->frag, c->frag_len + len + 1);
    if (!grown) {
      fputs("gwx-xload: out of memory\n", stderr);
      exit(1);
    }
    c->frag = grown;
    memcpy(c->frag + c->frag_len, payload, len);
    c->frag_len += len;
    if (h.opcode != XWS_CONT) {
      c->frag_opcode = h.opcode;
    }
    if (h.fin) {
      on_message(c, c->frag, c->frag_len, now);
      c->frag_len = 0;
      c->frag_opcode = 0;
    }
  }
  return at;
}

/** Checks the server's handshake response at the start of c->in; returns its length, 0 if
 * incomplete, or kills the connection and returns 0. */
static size_t check_response(conn* c) {
  c->in[c->in_len] = '\0';
  const char* end = strstr((const char*)c->in, "\r\n\r\n");
  if (!end) {
    if (c->in_len >= k_handshake_max || memchr(c->in, '\0', c->in_len)) {
      error_at(c, "no valid handshake response in %zu bytes", c->in_len);
      kill_conn(c);
    }
    return 0;
  }
  const size_t head = (size_t)(end - (const char*)c->in) + 4;
  char resp[k_handshake_max + 1];
  memcpy(resp, c->in, head);
  resp[head] = '\0';
  for (char* p = resp; *p; ++p) {
    if (*p >= 'A' && *p <= 'Z') {
      *p = (char)(*p - 'A' + 'a'); /* header names and tokens compare case-insensitively */
    }
  }
  char want[29];
  char want_line[64];
  xws_accept_key(c->key, strlen(c->key), want);
  snprintf(want_line, sizeof want_line, "\r\nsec-websocket-accept: %s\r\n", want);
  /* The accept value is case-sensitive: find the header in the lowered copy, compare the
   * original bytes at the same place. */
  const char* at = strstr(resp, "\r\nsec-websocket-accept:");
  int accept_ok = 0;
  if (at) {
    const char* v = (const char*)c->in + (at - resp) + 23;
    while (*v == ' ' || *v == '\t') {
      ++v;
    }
    accept_ok = strncmp(v, want, 28) == 0 && (v[28] == '\r' || v[28] == ' ' || v[28] == '\t');
  }
  if (strncmp(resp, "http/1.1 101", 12) != 0 || !strstr(resp, "\r\nupgrade: websocket") ||
      !strstr(resp, "\r\nconnection:") || !strstr(strstr(resp, "\r\nconnection:"), "upgrade") ||
      !accept_ok) {
    const char* eol = strstr((const char*)c->in, "\r\n");
    error_at(c, "handshake refused or wrong: %.*s", (int)(eol - (const char*)c->in),
             (const char*)c->in);
    kill_conn(c);
    return 0;
  }
  return head;
}

static void on_readable(conn* c, uint64_t now) {
  if (c->in_len + 1 >= c->in_cap) {
    error_at(c, "input buffer full");
    kill_conn(c);
    return;
  }
  const ssize_t got = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len - 1, 0);
  if (got == 0 || (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
    error_at(c, "the server closed the connection (%s)", got == 0 ? "EOF" : strerror(errno));
    if (c->state != ST_OPEN) {
      ++g_failed_open;
    }
    kill_conn(c);
    return;
  }
  if (got < 0) {
    return;
  }
  c->in_len += (size_t)got;
  size_t used = 0;
  if (c->state == ST_HANDSHAKE) {
    used = check_response(c);
    if (used == 0) {
      if (c->state == ST_DEAD) {
        ++g_failed_open;
      }
      return;
    }
    c->state = ST_OPEN;
    ++g_opened;
    if (c->role == ROLE_RECEIVER) {
      ++g_live_receivers;
    }
  }
  memmove(c->in, c->in + used, c->in_len - used);
  c->in_len -= used;
  used = parse_frames(c, now);
  if (c->state == ST_DEAD) {
    return;
  }
  memmove(c->in, c->in + used, c->in_len - used);
  c->in_len -= used;
  flush_out(c);
}

static void start_connect(conn* c) {
  c->fd = socket(g_addr->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c->fd < 0) {
    error_at(c, "socket: %s", strerror(errno));
    c->state = ST_DEAD;
    ++g_failed_open;
    return;
  }
  const int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  c->state = ST_CONNECTING;
  c->events = EPOLLOUT;
  struct epoll_event e = {.events = EPOLLOUT, .data.ptr = c};
  epoll_ctl(g_ep, EPOLL_CTL_ADD, c->fd, &e);
  if (connect(c->fd, g_addr->ai_addr, g_addr->ai_addrlen) != 0 && errno != EINPROGRESS) {
    error_at(c, "connect: %s", strerror(errno));
    kill_conn(c);
    ++g_failed_open;
  }
}

static void on_connected(conn* c) {
  int err = 0;
  socklen_t len = sizeof err;
  getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
  if (err != 0) {
    error_at(c, "connect: %s", strerror(err));
    kill_conn(c);
    ++g_failed_open;
    return;
  }
  uint8_t raw[16];
  for (int i = 0; i < 16; i += 8) {
    const uint64_t r = rng_next();
    memcpy(raw + i, &r, 8);
  }
  xws_base64(raw, sizeof raw, c->key);
  const int n = snprintf((char*)c->out, c->out_cap,
                         "GET %s HTTP/1.1\r\nHost: %s:%s\r\nUpgrade: websocket\r\n"
                         "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                         "Sec-WebSocket-Version: 13\r\n\r\n",
                         opt.path, opt.host, opt.port, c->key);
  c->out_off = 0;
  c->out_len = (size_t)n;
  c->state = ST_HANDSHAKE;
  flush_out(c);
}

/* ---- the run */

static void on_event(conn* c, uint32_t ev, uint64_t now) {
  if (c->state == ST_DEAD) {
    return;
  }
  if (c->state == ST_CONNECTING) {
    on_connected(c);
    return;
  }
  if (ev & EPOLLOUT) {
    flush_out(c);
  }
  if (c->state != ST_DEAD && (ev & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
    on_readable(c, now);
  }
  if (c->role == ROLE_RECEIVER) {
    advance_done();
  }
}

/** Runs the loop until `done()` or `deadline_ns`; each turn calls `fanout_pump` if fanout. */
static void loop_until(int (*done)(void), uint64_t deadline_ns) {
  struct epoll_event ev[k_max_events];
  for (;;) {
    uint64_t now = xws_now_ns();
    if (done() || now >= deadline_ns) {
      return;
    }
    uint64_t wait_ms = (deadline_ns - now) / 1000000 + 1;
    if (wait_ms > 20) {
      wait_ms = 20;
    }
    const int n = epoll_wait(g_ep, ev, k_max_events, (int)wait_ms);
    now = xws_now_ns();
    for (int i = 0; i < n; ++i) {
      on_event(ev[i].data.ptr, ev[i].events, now);
    }
    if (opt.fanout) {
      fanout_pump(now);
    }
  }
}

static size_t g_open_target;
static size_t g_next_to_open;
static size_t g_open_limit; /* connections that may be opened now */

static int all_opened(void) {
  /* Keeps at most k_max_open_at_once connection attempts outstanding. */
  while (g_next_to_open < g_open_limit &&
         g_next_to_open - g_opened - g_failed_open < k_max_open_at_once) {
    start_connect(&g_conns[g_next_to_open++]);
  }
  return g_opened + g_failed_open >= g_open_target;
}

static int never(void) {
  return 0;
}

static int nothing_outstanding(void) {
  if (opt.fanout) {
    return g_done >= g_sent;
  }
  for (size_t i = 0; i < g_nconns; ++i) {
    const conn* c = &g_conns[i];
    if (c->state == ST_OPEN && c->next_recv != c->next_send) {
      return 0;
    }
  }
  return 1;
}

static uint64_t outstanding(void) {
  uint64_t n = 0;
  if (opt.fanout) {
    for (uint64_t s = g_done; s < g_sent; ++s) {
      n += g_remaining[s % opt.inflight];
    }
    return n;
  }
  for (size_t i = 0; i < g_nconns; ++i) {
    const conn* c = &g_conns[i];
    if (c->state == ST_OPEN) {
      n += c->next_send - c->next_recv;
    }
  }
  return n;
}

static void usage(const char* why) {
  if (why) {
    fprintf(stderr, "gwx-xload: %s\n", why);
  }
  fputs(
      "usage: gwx-xload echo|fanout ws://HOST:PORT[/path] [--connections N] [--receivers N]\n"
      "         [--inflight K] [--size BYTES] [--prefix TEXT] [--duration S] [--warmup S]\n"
      "         [--drain-timeout S] [--open-timeout S] [--max-message BYTES]\n"
      "         [--pid NAME=PID]... [--json]\n",
      stderr);
  exit(2);
}

static void parse_url(const char* url) {
  if (strncmp(url, "ws://", 5) != 0) {
    usage("URL must start with ws://");
  }
  const char* hp = url + 5;
  const char* slash = strchr(hp, '/');
  const size_t hp_len = slash ? (size_t)(slash - hp) : strlen(hp);
  snprintf(opt.path, sizeof opt.path, "%s", slash ? slash : "/");
  const char* colon = memrchr(hp, ':', hp_len);
  if (!colon || (size_t)(colon - hp) >= sizeof opt.host || hp_len - (size_t)(colon - hp) > 6) {
    usage("URL must be ws://HOST:PORT[/path]");
  }
  memcpy(opt.host, hp, (size_t)(colon - hp));
  opt.host[colon - hp] = '\0';
  memcpy(opt.port, colon + 1, hp_len - (size_t)(colon - hp) - 1);
  opt.port[hp_len - (size_t)(colon - hp) - 1] = '\0';
}

static double number(const char* s) {
  char* end;
  const double v = strtod(s, &end);
  if (*s == '\0' || *end != '\0' || v < 0) {
    usage("bad number");
  }
  return v;
}

static void parse_args(int argc, char** argv) {
  if (argc < 3) {
    usage(NULL);
  }
  if (strcmp(argv[1], "fanout") == 0) {
    opt.fanout = 1;
  } else if (strcmp(argv[1], "echo") != 0) {
    usage("mode must be echo or fanout");
  }
  parse_url(argv[2]);
  for (int i = 3; i < argc; ++i) {
    const char* a = argv[i];
    if (strcmp(a, "--json") == 0) {
      opt.json = 1;
      continue;
    }
    if (i + 1 >= argc) {
      usage("an option without its value");
    }
    const char* v = argv[++i];
    if (strcmp(a, "--connections") == 0) {
      opt.connections = (size_t)number(v);
    } else if (strcmp(a, "--receivers") == 0) {
      opt.receivers = (size_t)number(v);
    } else if (strcmp(a, "--inflight") == 0) {
      opt.inflight = (size_t)number(v);
    } else if (strcmp(a, "--size") == 0) {
      opt.size = (size_t)number(v);
    } else if (strcmp(a, "--duration") == 0) {
      opt.duration = number(v);
    } else if (strcmp(a, "--warmup") == 0) {
      opt.warmup = number(v);
    } else if (strcmp(a, "--drain-timeout") == 0) {
      opt.drain = number(v);
    } else if (strcmp(a, "--open-timeout") == 0) {
      opt.open_timeout = number(v);
    } else if (strcmp(a, "--max-message") == 0) {
      opt.max_message = (size_t)number(v);
    } else if (strcmp(a, "--prefix") == 0) {
      opt.prefix = v;
      opt.prefix_len = strlen(v);
    } else if (strcmp(a, "--pid") == 0) {
      const char* eq = strchr(v, '=');
      if (!eq || eq == v || opt.npids == k_max_pids) {
        usage("--pid NAME=PID");
      }
      watched* w = &opt.pids[opt.npids++];
      w->name = strndup(v, (size_t)(eq - v));
      w->pid = (pid_t)number(eq + 1);
    } else {
      usage("unknown option");
    }
  }
  if (opt.size < k_min_size || opt.size > opt.max_message || opt.inflight == 0 ||
      opt.prefix_len > k_max_prefix || opt.duration <= 0 ||
      (opt.fanout ? opt.receivers == 0 : opt.connections == 0)) {
    usage(
        "need --size >= 22 (and <= --max-message), --inflight >= 1, a prefix of at most 256 "
        "bytes, --duration > 0 and at least one connection or receiver");
  }
}

static void raise_file_limit(void) {
  struct rlimit lim;
  if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    setrlimit(RLIMIT_NOFILE, &lim);
  }
}

static void setup_conns(void) {
  g_nconns = opt.fanout ? opt.receivers + 1 : opt.connections;
  g_conns = xmalloc(g_nconns * sizeof *g_conns);
  const size_t frame = opt.prefix_len + opt.size + 14;
  for (size_t i = 0; i < g_nconns; ++i) {
    conn* c = &g_conns[i];
    c->fd = -1;
    c->role = !opt.fanout ? ROLE_ECHO : i < opt.receivers ? ROLE_RECEIVER : ROLE_SENDER;
    c->in_cap = k_read_chunk;
    c->in = xmalloc(c->in_cap);
    /* What may be outstanding (requests, messages in flight), pongs and the handshake. */
    c->out_cap = opt.inflight * frame + 2 * (125 + 14) + 1024;
    c->out = xmalloc(c->out_cap);
    if (c->role == ROLE_ECHO) {
      c->sent_at = xmalloc(opt.inflight * sizeof *c->sent_at);
    }
  }
  if (opt.fanout) {
    g_sender = &g_conns[opt.receivers];
    g_f_sent_at = xmalloc(opt.inflight * sizeof *g_f_sent_at);
    g_remaining = xmalloc(opt.inflight * sizeof *g_remaining);
  }
}

static void print_result(double seconds, double self_cpu_us, uint64_t sent, uint64_t lost) {
  const char* unit = opt.fanout ? "delivery" : "msg";
  const double rate = seconds > 0 ? (double)g_measured / seconds : 0;
  const double wall_us = seconds * 1e6;
  char pid_part[2048] = "";
  size_t at = 0;
  for (int i = 0; i < opt.npids; ++i) {
    const watched* w = &opt.pids[i];
    const double cpu = w->before >= 0 && w->after >= 0 ? w->after - w->before : -1;
    const double per = cpu >= 0 && g_measured > 0 ? cpu / (double)g_measured : -1;
    const double pct = cpu >= 0 && wall_us > 0 ? 100 * cpu / wall_us : -1;
    int n;
    if (opt.json) {
      n = snprintf(pid_part + at, sizeof pid_part - at,
                   "%s\"%s\":{\"pid\":%d,\"cpu_us_per_%s\":%.4f,\"cpu_percent\":%.1f}",
                   i ? "," : "", w->name, (int)w->pid, unit, per, pct);
    } else {
      n = snprintf(pid_part + at, sizeof pid_part - at, " cpu_us/%s[%s]=%.3f cpu%%[%s]=%.0f", unit,
                   w->name, per, w->name, pct);
    }
    if (n > 0 && (size_t)n < sizeof pid_part - at) {
      at += (size_t)n;
    }
  }
  const double self_per = g_measured > 0 ? self_cpu_us / (double)g_measured : -1;
  const double self_pct = wall_us > 0 ? 100 * self_cpu_us / wall_us : -1;
  const size_t conns = opt.fanout ? opt.receivers : opt.connections;
  if (opt.json) {
    printf(
        "{\"tool\":\"gwx-xload\",\"mode\":\"%s\",\"url\":\"ws://%s:%s%s\",\"%s\":%zu,"
        "\"size\":%zu,\"inflight\":%zu,\"seconds\":%.3f,\"rate\":%.1f,\"measured\":%llu,"
        "\"sent\":%llu,\"lost\":%llu,\"p50_ms\":%.4f,\"p99_ms\":%.4f,\"p999_ms\":%.4f,"
        "\"errors\":%llu,\"first_error\":\"",
        opt.fanout ? "fanout" : "echo", opt.host, opt.port, opt.path,
        opt.fanout ? "receivers" : "connections", conns, opt.size, opt.inflight, seconds, rate,
        (unsigned long long)g_measured, (unsigned long long)sent, (unsigned long long)lost,
        hist_quantile_ms(0.5), hist_quantile_ms(0.99), hist_quantile_ms(0.999),
        (unsigned long long)g_errors);
    for (const char* p = g_first_error; *p; ++p) {
      if (*p == '"' || *p == '\\') {
        putchar('\\');
      }
      putchar((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f ? '?' : *p);
    }
    printf("\",\"pids\":{%s},\"cpu_us_per_%s_xload\":%.4f,\"cpu_percent_xload\":%.1f}\n", pid_part,
           unit, self_per, self_pct);
  } else {
    printf(
        "tool=gwx-xload mode=%s %s=%zu size=%zu inflight=%zu seconds=%.2f %s/s=%.0f "
        "p50_ms=%.3f p99_ms=%.3f p999_ms=%.3f sent=%llu lost=%llu errors=%llu%s "
        "cpu_us/%s[xload]=%.3f cpu%%[xload]=%.0f",
        opt.fanout ? "fanout" : "echo", opt.fanout ? "receivers" : "conns", conns, opt.size,
        opt.inflight, seconds, opt.fanout ? "deliveries" : "msgs", rate, hist_quantile_ms(0.5),
        hist_quantile_ms(0.99), hist_quantile_ms(0.999), (unsigned long long)sent,
        (unsigned long long)lost, (unsigned long long)g_errors, pid_part, unit, self_per, self_pct);
    if (g_errors) {
      printf(" first_error=\"%s\"", g_first_error);
    }
    putchar('\n');
  }
  fflush(stdout);
}

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  parse_args(argc, argv);
  raise_file_limit();
  if (xws_random(g_rng, sizeof g_rng) != 0) {
    fputs("gwx-xload: getrandom failed\n", stderr);
    return 1;
  }
  g_rng[0] |= 1;
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
  const int gai = getaddrinfo(opt.host, opt.port, &hints, &g_addr);
  if (gai != 0) {
    fprintf(stderr, "gwx-xload: %s:%s: %s\n", opt.host, opt.port, gai_strerror(gai));
    return 1;
  }
  g_ep = epoll_create1(EPOLL_CLOEXEC);
  setup_conns();

  /* Open: every receiver (or echo client), then the sender, so that the sender is not among
   * the clients already connected when a server greets newcomers. */
  const uint64_t open_deadline = xws_now_ns() + (uint64_t)(opt.open_timeout * 1e9);
  g_open_target = g_open_limit = opt.fanout ? opt.receivers : opt.connections;
  loop_until(all_opened, open_deadline);
  if (opt.fanout && g_failed_open == 0 && g_opened == g_open_target) {
    g_open_target = g_open_limit = g_nconns;
    loop_until(all_opened, open_deadline);
  }
  if (g_failed_open > 0 || g_opened < g_open_target) {
    if (g_errors == 0) {
      error_at(NULL, "%zu of %zu connections opened", g_opened, g_open_target);
    }
    fprintf(stderr, "gwx-xload: %zu of %zu connections opened: %s\n", g_opened, g_open_target,
            g_first_error);
    print_result(0, 0, 0, 0);
    return 1;
  }

  g_t0 = xws_now_ns();
  if (opt.fanout) {
    fanout_pump(g_t0);
  } else {
    for (size_t i = 0; i < g_nconns; ++i) {
      for (size_t k = 0; k < opt.inflight; ++k) {
        echo_send(&g_conns[i], g_t0);
      }
      flush_out(&g_conns[i]);
    }
  }
  loop_until(never, g_t0 + (uint64_t)(opt.warmup * 1e9));
  for (int i = 0; i < opt.npids; ++i) {
    opt.pids[i].before = xws_proc_cpu_us(opt.pids[i].pid);
  }
  const double self_before = xws_self_cpu_us();
  const uint64_t window_start = xws_now_ns();
  g_measuring = 1;
  loop_until(never, window_start + (uint64_t)(opt.duration * 1e9));
  g_measuring = 0;
  g_stopping = 1;
  const uint64_t window_end = xws_now_ns();
  const double self_after = xws_self_cpu_us();
  for (int i = 0; i < opt.npids; ++i) {
    opt.pids[i].after = xws_proc_cpu_us(opt.pids[i].pid);
  }
  loop_until(nothing_outstanding, window_end + (uint64_t)(opt.drain * 1e9));
  const uint64_t lost = outstanding();
  if (lost > 0) {
    error_at(NULL, "%llu %s never arrived within --drain-timeout", (unsigned long long)lost,
             opt.fanout ? "deliveries" : "replies");
    g_errors += lost - 1;
  }
  uint64_t sent = g_sent;
  if (!opt.fanout) {
    for (size_t i = 0; i < g_nconns; ++i) {
      sent += g_conns[i].next_send;
    }
  }
  /* A clean end for the servers: a close frame (1000) on every connection still open. */
  static const uint8_t k_normal[2] = {0x03, 0xE8};
  for (size_t i = 0; i < g_nconns; ++i) {
    conn* c = &g_conns[i];
    if (c->state == ST_OPEN && queue_frame(c, XWS_CLOSE, NULL, 0, k_normal, sizeof k_normal)) {
      flush_out(c);
    }
  }
  print_result((double)(window_end - window_start) / 1e9, self_after - self_before, sent, lost);
  return g_errors > 0 ? 1 : 0;
}
