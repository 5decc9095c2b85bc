/* gwx-xecho: a single-threaded WebSocket server on raw epoll, written from RFC 6455 alone and
 * sharing no code with gwx, as a second reference next to `gwx-bench reference`.
 *
 *   gwx-xecho [--listen HOST:PORT] [--broadcast HOST:PORT] [--max-message BYTES]
 *
 * --listen: every message a client sends comes back to it. --broadcast: every message a client
 * sends goes to every client of that listener (the sender included), its frame encoded once.
 * Port 0 picks a free port; the bound addresses are printed as `listening echo ws://...` and
 * `listening broadcast ws://...`. The handshake and every frame are validated (masking, RSV
 * bits, opcodes, control frame rules, lengths against --max-message, UTF-8 of text); a client
 * that breaks a rule gets a close frame with the RFC's code and is disconnected. Memory per
 * connection is bounded: a partial frame (at most --max-message), a fragmented message being
 * reassembled (the same bound) and at most k_max_queued bytes waiting to be written (a client
 * further behind is disconnected); while anything waits to be written to a client, it is not
 * read from (backpressure). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "xws.h"

enum { k_handshake_max = 8192, k_read_chunk = 65536, k_max_events = 256, k_max_iov = 64 };
static const size_t k_max_queued = 4u << 20; /* bytes waiting per client before it is dropped */

enum kind { KIND_LISTENER, KIND_CONN };
enum role { ROLE_ECHO, ROLE_BROADCAST };

/** Bytes several clients may be waiting to receive: freed when the last one has them. */
typedef struct shared_buf {
  int refs;
  size_t len;
  uint8_t data[];
} shared_buf;

typedef struct out_item {
  shared_buf* buf;
  size_t off;
  struct out_item* next;
} out_item;

struct listener;

typedef struct conn {
  enum kind kind;
  int fd;
  struct listener* lis;
  int open;         /* handshake done */
  int closed;       /* closed in this batch of events; freed after it */
  int closing;      /* got a close frame: closed once the reply is written */
  size_t index;     /* in lis->clients */
  uint8_t* pending; /* unparsed input (a partial request or frame) */
  size_t pending_len;
  uint8_t* frag; /* a fragmented message being reassembled */
  size_t frag_len;
  int frag_opcode; /* 0: none in progress */
  out_item* head;
  out_item* tail;
  size_t queued;
  struct conn* next_dead;
} conn;

typedef struct listener {
  enum kind kind;
  int fd;
  enum role role;
  conn** clients; /* open clients */
  size_t nclients;
  size_t cap;
} listener;

static int g_ep;
static size_t g_max_message = 1u << 20;
static uint8_t* g_rbuf; /* shared read buffer: pending bytes + one read */
static size_t g_rbuf_cap;
static uint8_t* g_self_out; /* what one read produces for its own connection */
static size_t g_self_len;
static uint8_t* g_bcast_out; /* what one read produces for every client of a broadcast listener */
static size_t g_bcast_len;
static size_t g_out_cap;
static conn* g_dead;

static void die(const char* what) {
  fprintf(stderr, "gwx-xecho: %s: %s\n", what, strerror(errno));
  exit(1);
}

static void* xmalloc(size_t n) {
  void* p = malloc(n);
  if (!p) {
    fputs("gwx-xecho: out of memory\n", stderr);
    exit(1);
  }
  return p;
}

/** Adds `fd` to the epoll set for reading; `ptr` (a listener or conn) comes back with events. */
static void watch_in(int fd, void* ptr) {
  struct epoll_event e = {.events = EPOLLIN, .data.ptr = ptr};
  epoll_ctl(g_ep, EPOLL_CTL_ADD, fd, &e);
}

static void set_events(conn* c, uint32_t ev) {
  struct epoll_event e = {.events = ev, .data.ptr = c};
  epoll_ctl(g_ep, EPOLL_CTL_MOD, c->fd, &e);
}

static void close_conn(conn* c) {
  if (c->closed) {
    return;
  }
  c->closed = 1;
  epoll_ctl(g_ep, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
  if (c->open && c->lis->role == ROLE_BROADCAST) {
    listener* l = c->lis;
    conn* last = l->clients[--l->nclients];
    l->clients[c->index] = last;
    last->index = c->index;
  }
  for (out_item* it = c->head; it;) {
    out_item* next = it->next;
    if (--it->buf->refs == 0) {
      free(it->buf);
    }
    free(it);
    it = next;
  }
  c->head = c->tail = NULL;
  free(c->pending);
  free(c->frag);
  c->pending = c->frag = NULL;
  c->next_dead = g_dead;
  g_dead = c;
}

/** Queues `b` from `off` behind what `c` already waits for. 0 if `c` is too far behind. */
static int enqueue(conn* c, shared_buf* b, size_t off) {
  if (c->queued + (b->len - off) > k_max_queued) {
    return 0;
  }
  out_item* it = xmalloc(sizeof *it);
  it->buf = b;
  it->off = off;
  it->next = NULL;
  ++b->refs;
  if (c->tail) {
    c->tail->next = it;
  } else {
    c->head = it;
    set_events(c, EPOLLOUT); /* stop reading until the queue is written */
  }
  c->tail = it;
  c->queued += b->len - off;
  return 1;
}

static shared_buf* make_shared(const uint8_t* p, size_t n) {
  shared_buf* b = xmalloc(sizeof *b + n);
  b->refs = 0;
  b->len = n;
  memcpy(b->data, p, n);
  return b;
}

/** Sends `n` bytes to `c` at once or queues what the socket does not take. `*shared` is the
 * buffer to queue from, made from `p` on first need (so a broadcast is copied once at most). */
static void deliver(conn* c, const uint8_t* p, size_t n, shared_buf** shared) {
  size_t sent = 0;
  if (!c->head) {
    const ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
      close_conn(c);
      return;
    }
    sent = w > 0 ? (size_t)w : 0;
    if (sent == n) {
      return;
    }
  }
  if (!*shared) {
    *shared = make_shared(p, n);
  }
  if (!enqueue(c, *shared, sent)) {
    close_conn(c); /* too slow a client */
  }
}

static void flush_queue(conn* c) {
  while (c->head) {
    struct iovec iov[k_max_iov];
    int n = 0;
    for (out_item* it = c->head; it && n < k_max_iov; it = it->next, ++n) {
      iov[n].iov_base = it->buf->data + it->off;
      iov[n].iov_len = it->buf->len - it->off;
    }
    struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)n};
    ssize_t w = sendmsg(c->fd, &msg, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        return;
      }
      close_conn(c);
      return;
    }
    c->queued -= (size_t)w;
    while (w > 0) {
      out_item* it = c->head;
      const size_t left = it->buf->len - it->off;
      if ((size_t)w < left) {
        it->off += (size_t)w;
        break;
      }
      w -= (ssize_t)left;
      c->head = it->next;
      if (--it->buf->refs == 0) {
        free(it->buf);
      }
      free(it);
    }
    if (!c->head) {
      c->tail = NULL;
    }
  }
  if (c->closing) {
    close_conn(c);
    return;
  }
  set_events(c, EPOLLIN);
}

static void append_frame(uint8_t* out, size_t* len, int opcode, const uint8_t* p, size_t n) {
  *len += xws_write_header(out + *len, opcode, n, NULL);
  memcpy(out + *len, p, n);
  *len += n;
}

/** Sends a close frame with `code` (best effort) and closes. */
static void fail(conn* c, uint16_t code) {
  uint8_t frame[4] = {0x88, 2, (uint8_t)(code >> 8), (uint8_t)code};
  if (send(c->fd, frame, sizeof frame, MSG_NOSIGNAL) < 0) {
    /* the connection goes anyway */
  }
  close_conn(c);
}

/** The value of header `name` in the request `req` (lines end in CRLF), or NULL. */
static const char* header(const char* req, const char* name, size_t* len) {
  const size_t nlen = strlen(name);
  for (const char* line = strstr(req, "\r\n"); line && line[2] != '\r';
       line = strstr(line + 2, "\r\n")) {
    const char* l = line + 2;
    if (strncasecmp(l, name, nlen) == 0 && l[nlen] == ':') {
      const char* v = l + nlen + 1;
      while (*v == ' ' || *v == '\t') {
        ++v;
      }
      const char* end = strstr(v, "\r\n");
      while (end > v && (end[-1] == ' ' || end[-1] == '\t')) {
        --end;
      }
      *len = (size_t)(end - v);
      return v;
    }
  }
  return NULL;
}

/** 1 if the comma-separated header value holds `token` (case-insensitive). */
static int has_token(const char* v, size_t len, const char* token) {
  const size_t tlen = strlen(token);
  size_t i = 0;
  while (i < len) {
    while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ',')) {
      ++i;
    }
    size_t j = i;
    while (j < len && v[j] != ',') {
      ++j;
    }
    size_t e = j;
    while (e > i && (v[e - 1] == ' ' || v[e - 1] == '\t')) {
      --e;
    }
    if (e - i == tlen && strncasecmp(v + i, token, tlen) == 0) {
      return 1;
    }
    i = j;
  }
  return 0;
}

/** 1 if `key` is base64 of 16 bytes (RFC 6455 4.1). */
static int valid_key(const char* key, size_t len) {
  if (len != 24 || key[22] != '=' || key[23] != '=') {
    return 0;
  }
  for (size_t i = 0; i < 22; ++i) {
    const char ch = key[i];
    if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
          ch == '+' || ch == '/')) {
      return 0;
    }
  }
  return 1;
}

static void refuse(conn* c, const char* status_and_headers) {
  char resp[256];
  const int n =
      snprintf(resp, sizeof resp, "HTTP/1.1 %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
               status_and_headers);
  if (send(c->fd, resp, (size_t)n, MSG_NOSIGNAL) < 0) {
    /* closing anyway */
  }
  close_conn(c);
}

/** Handles a complete request (NUL-terminated at its blank line). 0 if refused. */
static int handshake(conn* c, char* req) {
  size_t len = 0;
  const char* v;
  if (strncmp(req, "GET ", 4) != 0) {
    refuse(c, "405 Method Not Allowed");
    return 0;
  }
  const char* eol = strstr(req, "\r\n");
  if (eol - req < 14 || strncmp(eol - 9, " HTTP/1.1", 9) != 0) {
    refuse(c, "400 Bad Request");
    return 0;
  }
  if (!header(req, "Host", &len) || !(v = header(req, "Upgrade", &len)) ||
      !has_token(v, len, "websocket") || !(v = header(req, "Connection", &len)) ||
      !has_token(v, len, "upgrade")) {
    refuse(c, "400 Bad Request");
    return 0;
  }
  if (!(v = header(req, "Sec-WebSocket-Version", &len)) || len != 2 || strncmp(v, "13", 2) != 0) {
    refuse(c, "426 Upgrade Required\r\nSec-WebSocket-Version: 13");
    return 0;
  }
  if (!(v = header(req, "Sec-WebSocket-Key", &len)) || !valid_key(v, len)) {
    refuse(c, "400 Bad Request");
    return 0;
  }
  char accept[29];
  xws_accept_key(v, len, accept);
  char resp[256];
  const int n = snprintf(resp, sizeof resp,
                         "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                         "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
                         accept);
  if (send(c->fd, resp, (size_t)n, MSG_NOSIGNAL) != n) {
    close_conn(c); /* a fresh socket takes 130 bytes; one that does not is gone */
    return 0;
  }
  c->open = 1;
  if (c->lis->role == ROLE_BROADCAST) {
    listener* l = c->lis;
    if (l->nclients == l->cap) {
      l->cap = l->cap ? 2 * l->cap : 64;
      conn** grown = realloc(l->clients, l->cap * sizeof *grown);
      if (!grown) {
        die("realloc");
      }
      l->clients = grown;
    }
    c->index = l->nclients;
    l->clients[l->nclients++] = c;
  }
  return 1;
}

/** A complete message from `c`: echoed, or collected for the broadcast of this read. */
static void on_message(conn* c, int opcode, const uint8_t* p, size_t n) {
  if (c->lis->role == ROLE_ECHO) {
    append_frame(g_self_out, &g_self_len, opcode, p, n);
  } else {
    append_frame(g_bcast_out, &g_bcast_len, opcode, p, n);
  }
}

/** Parses the frames in `p`; returns the bytes consumed, or (size_t)-1 once `c` is failed. */
static size_t parse_frames(conn* c, uint8_t* p, size_t n) {
  size_t at = 0;
  for (;;) {
    xws_header h;
    const int r = xws_parse_header(p + at, n - at, &h);
    if (r == XWS_NEED_MORE) {
      return at;
    }
    if (r == XWS_BAD || h.rsv != 0 || !h.masked) {
      fail(c, 1002);
      return (size_t)-1;
    }
    const int control = h.opcode >= 0x8;
    if ((h.opcode > XWS_BINARY && !control) || h.opcode > XWS_PONG ||
        (control && (!h.fin || h.length > 125))) {
      fail(c, 1002);
      return (size_t)-1;
    }
    if (!control && h.length > g_max_message - (h.opcode == XWS_CONT ? c->frag_len : 0)) {
      fail(c, 1009);
      return (size_t)-1;
    }
    if ((h.opcode == XWS_CONT) != (c->frag_opcode != 0) && !control) {
      fail(c, 1002); /* a continuation with nothing to continue, or a new message inside one */
      return (size_t)-1;
    }
    if (n - at < h.header_size + h.length) {
      return at;
    }
    uint8_t* payload = p + at + h.header_size;
    const size_t len = (size_t)h.length;
    xws_mask(payload, len, h.mask, 0);
    at += h.header_size + len;
    if (control) {
      if (h.opcode == XWS_PING) {
        append_frame(g_self_out, &g_self_len, XWS_PONG, payload, len);
      } else if (h.opcode == XWS_CLOSE) {
        if (len == 1) {
          fail(c, 1002);
          return (size_t)-1;
        }
        /* Echo the status code (RFC 6455 5.5.1), after what this read produced. */
        append_frame(g_self_out, &g_self_len, XWS_CLOSE, payload, len < 2 ? len : 2);
        c->closing = 1;
        return at;
      }
      continue;
    }
    const uint8_t* msg = payload;
    size_t msg_len = len;
    int opcode = h.opcode;
    if (h.opcode != XWS_CONT && h.fin) {
      /* the common case: one frame, no copy */
    } else {
      uint8_t* grown = realloc(c->frag, c->frag_len + len + 1); /* at most --max-message */
      if (!grown) {
        die("realloc");
      }
      c->frag = grown;
      memcpy(c->frag + c->frag_len, payload, len);
      c->frag_len += len;
      if (h.opcode != XWS_CONT) {
        c->frag_opcode = h.opcode;
      }
      if (!h.fin) {
        continue;
      }
      opcode = c->frag_opcode;
      msg = c->frag;
      msg_len = c->frag_len;
      c->frag_opcode = 0;
    }
    if (opcode == XWS_TEXT && !xws_utf8_valid(msg, msg_len)) {
      fail(c, 1007);
      return (size_t)-1;
    }
    on_message(c, opcode, msg, msg_len);
    if (msg == c->frag) {
      free(c->frag);
      c->frag = NULL;
      c->frag_len = 0;
    }
  }
}

static void keep_pending(conn* c, const uint8_t* p, size_t n) {
  if (n == 0) {
    free(c->pending);
    c->pending = NULL;
    c->pending_len = 0;
    return;
  }
  uint8_t* kept = realloc(c->pending, n);
  if (!kept) {
    die("realloc");
  }
  memmove(kept, p, n);
  c->pending = kept;
  c->pending_len = n;
}

static void broadcast(listener* l) {
  shared_buf* shared = NULL;
  for (size_t i = 0; i < l->nclients;) {
    conn* c = l->clients[i];
    deliver(c, g_bcast_out, g_bcast_len, &shared);
    if (!c->closed) {
      ++i; /* a closed client was swapped out of slot i: look at slot i again */
    }
  }
  if (shared && shared->refs == 0) {
    free(shared);
  }
}

static void on_readable(conn* c) {
  const size_t kept = c->pending_len;
  if (kept) {
    memcpy(g_rbuf, c->pending, kept);
  }
  const ssize_t got = recv(c->fd, g_rbuf + kept, g_rbuf_cap - kept - 1, 0);
  if (got == 0 || (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
    close_conn(c);
    return;
  }
  if (got < 0) {
    return;
  }
  size_t n = kept + (size_t)got;
  size_t at = 0;
  if (!c->open) {
    g_rbuf[n] = '\0';
    char* end = strstr((char*)g_rbuf, "\r\n\r\n");
    if (!end) {
      if (n >= k_handshake_max || memchr(g_rbuf, '\0', n)) {
        refuse(c, "400 Bad Request");
      } else {
        keep_pending(c, g_rbuf, n);
      }
      return;
    }
    end[2] = '\0';
    at = (size_t)(end - (char*)g_rbuf) + 4;
    if (!handshake(c, (char*)g_rbuf)) {
      return;
    }
  }
  g_self_len = g_bcast_len = 0;
  const size_t used = parse_frames(c, g_rbuf + at, n - at);
  const int failed = used == (size_t)-1;
  if (g_self_len > 0) {
    shared_buf* shared = NULL;
    deliver(c, g_self_out, g_self_len, &shared);
  }
  if (g_bcast_len > 0) {
    broadcast(c->lis);
  }
  if (failed || c->closed) {
    return;
  }
  if (c->closing) {
    if (!c->head) {
      close_conn(c);
    }
    return;
  }
  keep_pending(c, g_rbuf + at + used, n - at - used);
}

static int open_listener(const char* spec, enum role role) {
  const char* hp = strncmp(spec, "ws://", 5) == 0 ? spec + 5 : spec;
  char host[256];
  const char* colon = strrchr(hp, ':');
  if (!colon || (size_t)(colon - hp) >= sizeof host) {
    fprintf(stderr, "gwx-xecho: '%s': expected HOST:PORT\n", spec);
    exit(2);
  }
  memcpy(host, hp, (size_t)(colon - hp));
  host[colon - hp] = '\0';
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};
  if (inet_pton(AF_INET, host, &a.sin_addr) != 1) {
    fprintf(stderr, "gwx-xecho: '%s': HOST must be an IPv4 address\n", spec);
    exit(2);
  }
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (fd < 0 || bind(fd, (struct sockaddr*)&a, sizeof a) != 0 || listen(fd, 4096) != 0) {
    die(spec);
  }
  socklen_t alen = sizeof a;
  getsockname(fd, (struct sockaddr*)&a, &alen);
  printf("listening %s ws://%s:%u/\n", role == ROLE_ECHO ? "echo" : "broadcast", host,
         ntohs(a.sin_port));
  listener* l = xmalloc(sizeof *l);
  *l = (listener){.kind = KIND_LISTENER, .fd = fd, .role = role};
  watch_in(fd, l);
  return fd;
}

static void on_accept(listener* l) {
  for (;;) {
    const int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      return; /* EAGAIN, or out of files: the next wake-up tries again */
    }
    const int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    conn* c = xmalloc(sizeof *c);
    *c = (conn){.kind = KIND_CONN, .fd = fd, .lis = l};
    watch_in(fd, c);
  }
}

static void usage(void) {
  fputs("usage: gwx-xecho [--listen HOST:PORT] [--broadcast HOST:PORT] [--max-message BYTES]\n",
        stderr);
  exit(2);
}

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  g_ep = epoll_create1(EPOLL_CLOEXEC);
  if (g_ep < 0) {
    die("epoll_create1");
  }
  const char* echo_spec[16];
  const char* bcast_spec[16];
  int nechos = 0, nbcasts = 0;
  for (int i = 1; i < argc; ++i) {
    if (i + 1 >= argc) {
      usage();
    }
    if (strcmp(argv[i], "--listen") == 0 && nechos < 16) {
      echo_spec[nechos++] = argv[++i];
    } else if (strcmp(argv[i], "--broadcast") == 0 && nbcasts < 16) {
      bcast_spec[nbcasts++] = argv[++i];
    } else if (strcmp(argv[i], "--max-message") == 0) {
      g_max_message = strtoul(argv[++i], NULL, 10);
      if (g_max_message == 0) {
        usage();
      }
    } else {
      usage();
    }
  }
  if (nechos + nbcasts == 0) {
    usage();
  }
  /* Room for a kept partial frame (payload + the largest header) plus one read. */
  g_rbuf_cap = g_max_message + 14 + k_read_chunk + 1;
  g_rbuf = xmalloc(g_rbuf_cap);
  /* A server frame is never longer than the client frame it answers, except that a reassembled
   * message (at most --max-message) goes out as one frame. */
  g_out_cap = g_rbuf_cap + g_max_message + 14;
  g_self_out = xmalloc(g_out_cap);
  g_bcast_out = xmalloc(g_out_cap);
  for (int i = 0; i < nechos; ++i) {
    open_listener(echo_spec[i], ROLE_ECHO);
  }
  for (int i = 0; i < nbcasts; ++i) {
    open_listener(bcast_spec[i], ROLE_BROADCAST);
  }
  fflush(stdout);
  struct epoll_event events[k_max_events];
  for (;;) {
    const int n = epoll_wait(g_ep, events, k_max_events, -1);
    if (n < 0 && errno != EINTR) {
      die("epoll_wait");
    }
    for (int i = 0; i < n; ++i) {
      if (*(enum kind*)events[i].data.ptr == KIND_LISTENER) {
        on_accept(events[i].data.ptr);
        continue;
      }
      conn* c = events[i].data.ptr;
      if (c->closed) {
        continue;
      }
      if (events[i].events & EPOLLOUT) {
        flush_queue(c);
      } else if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        on_readable(c);
      }
    }
    while (g_dead) {
      conn* next = g_dead->next_dead;
      free(g_dead);
      g_dead = next;
    }
  }
}
