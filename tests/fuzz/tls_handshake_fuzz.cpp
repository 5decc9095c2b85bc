// libFuzzer target for the server side of a TLS handshake as a gateway listener runs it: a
// net::tls_context built like a wss:// or tls+ listener's (two certificates for SNI, client
// certificates none / optional / required, ALPN http/1.1 or none) and net::tls_io over one end of
// a non-blocking socketpair. The input is what a client sends: byte 0 picks the listener setup,
// how the bytes are fed (all at once or in chunks, the server running between chunks) and
// whether the client then closes or just stops; the rest is the client's bytes.
//
// Checks what the gateway relies on: every call returns at once (after the client's EOF the
// handshake ends, it never asks to wait again); a failed handshake names a reason; a closed one
// says closed; OpenSSL's per-thread error queue is left empty (a loop serves many connections,
// and a stale error would be blamed on the next one); a read after the handshake gives 1..cap
// bytes; shutdown() and the session's end are safe in every state.
#include <openssl/err.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <vector>

#include "common/net/tls_context.hpp"
#include "common/net/tls_io.hpp"
#include "tests/unit/common/tls_test_pki.hpp"

namespace {

namespace net = gwx::net;

void check(bool ok) {
  if (!ok) {
    std::abort();
  }
}

// Listener setups: client verification (none, optional, require) x ALPN (wss: http/1.1; tls+:
// none). Built once; the PKI's files live as long as the process.
struct setups {
  gwx::test::test_pki pki;
  std::array<std::shared_ptr<net::tls_context>, 6> contexts;

  setups() {
    const auto ca = pki.make_ca("fuzz");
    const auto a = pki.make_leaf("fuzz", "a", "a.example", {"DNS:a.example", "IP:127.0.0.1"});
    const auto b = pki.make_leaf("fuzz", "b", "b.example", {"DNS:b.example", "DNS:*.b.example"});
    for (std::size_t i = 0; i < contexts.size(); ++i) {
      net::tls_server_config cfg;
      cfg.identities = {a, b};
      cfg.client_verify = static_cast<net::tls_peer_verify>(i % 3);
      if (cfg.client_verify != net::tls_peer_verify::none) {
        cfg.client_ca_file = ca;
      }
      if (i >= 3) {
        cfg.alpn = {"http/1.1"};
      }
      contexts[i] = net::tls_context::make_server(std::move(cfg));
    }
  }
};

setups& the_setups() {
  static setups s;
  return s;
}

struct fd_pair {
  int server = -1;
  int client = -1;
  fd_pair() {
    int fds[2];
    check(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds) == 0);
    server = fds[0];
    client = fds[1];
  }
  fd_pair(const fd_pair&) = delete;
  fd_pair& operator=(const fd_pair&) = delete;
  ~fd_pair() {
    close(server);
    close(client);
  }

  // What the server sent is thrown away, so its writes never block.
  void drain() const {
    std::array<char, 4096> buf;
    while (read(client, buf.data(), buf.size()) > 0) {
    }
  }
};

std::size_t chunk_size(std::uint8_t sel, std::size_t all) {
  const std::size_t c = sel >> 4;
  if (c == 0) {
    return all == 0 ? 1 : all;
  }
  return c == 1 ? 1 : c * c * 8;
}

// Runs the session until it needs more bytes from the client (false) or is over (true), the
// way client_session does on each readable event.
bool run(net::tls_io& tls, const fd_pair& fds, std::vector<char>& scratch) {
  // Bounded: each step either consumes client bytes or ends the session.
  for (int step = 0; step < 10000; ++step) {
    fds.drain();
    if (!tls.established()) {
      const auto st = tls.handshake();
      check(ERR_peek_error() == 0);
      if (st == net::tls_status::want_read) {
        return false;
      }
      if (st == net::tls_status::want_write) {
        continue;
      }
      if (st == net::tls_status::failed) {
        check(tls.failure() != net::tls_failure::none &&
              tls.failure() != net::tls_failure::timeout);
        check(net::to_string(tls.failure()) != nullptr);
        return true;
      }
      if (st == net::tls_status::closed) {
        check(tls.failure() == net::tls_failure::closed);
        return true;
      }
      check(st == net::tls_status::ok && tls.established());
      (void)net::verified_peer_certificate(tls.native());
      continue;
    }
    std::size_t n = 0;
    const auto st = tls.read(scratch.data(), scratch.size(), n);
    check(ERR_peek_error() == 0);
    switch (st) {
      case net::tls_status::ok:
        check(n > 0 && n <= scratch.size());
        continue;
      case net::tls_status::want_read:
        return false;
      case net::tls_status::want_write:
        continue;
      case net::tls_status::closed:
      case net::tls_status::failed:
        return true;
    }
  }
  check(false);  // the session spun without input
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  the_setups();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) {
    return 0;
  }
  const std::uint8_t sel = data[0];
  const auto& ctx = *the_setups().contexts[(sel & 0x07) % 6];
  const bool client_closes = (sel & 0x08) == 0;
  const char* wire = reinterpret_cast<const char*>(data + 1);
  const std::size_t len = size - 1;
  const std::size_t chunk = chunk_size(sel, len);

  fd_pair fds;
  net::tls_io tls(ctx.new_ssl(), fds.server);
  check(tls.native() != nullptr);
  std::vector<char> scratch(net::tls_io::k_record);
  bool over = false;
  for (std::size_t fed = 0; fed < len && !over;) {
    const std::size_t n = std::min(chunk, len - fed);
    const ssize_t w = write(fds.client, wire + fed, n);
    check(w == static_cast<ssize_t>(n));
    fed += n;
    over = run(tls, fds, scratch);
  }
  if (!over && client_closes) {
    check(shutdown(fds.client, SHUT_WR) == 0);
    check(run(tls, fds, scratch));
  }
  // The session ends here as the gateway ends it (close or handshake timeout).
  tls.shutdown();
  check(ERR_peek_error() == 0);
  return 0;
}
