// gwx-tls-memory: what OpenSSL keeps per idle server-side TLS connection of a gateway listener,
// counted by allocation site. Builds the listener's context as the gateway does (net::tls_context:
// released buffers, no session cache, ALPN http/1.1 as on wss), completes --connections
// handshakes over socketpairs against an in-process client, lets the client take its session
// ticket, then counts every OpenSSL allocation still live on the server side (OpenSSL's allocator
// hooks, so the figure is exact, not an RSS estimate). See docs/benchmarks.md, "Idle TLS
// connections".
#include <fcntl.h>
#include <malloc.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/net/tls_context.hpp"
#include "common/net/tls_io.hpp"
#include "common/options.hpp"

namespace {

namespace net = gwx::net;

// Live OpenSSL allocations while counting is on: pointer -> (size, "file:line").
struct allocation {
  std::size_t size;
  const char* file;
  int line;
};
std::unordered_map<void*, allocation>* g_live = nullptr;
bool g_counting = false;

// The hooks run for every OpenSSL allocation; counting is switched off around the table's own
// allocations and while the client side runs.
struct pause_counting {
  bool was = g_counting;
  pause_counting() { g_counting = false; }
  ~pause_counting() { g_counting = was; }
  pause_counting(const pause_counting&) = delete;
  pause_counting& operator=(const pause_counting&) = delete;
};

void* hook_malloc(std::size_t n, const char* file, int line) {
  void* p = std::malloc(n);
  if (g_counting && p != nullptr) {
    const pause_counting pause;
    (*g_live)[p] = {n, file, line};
  }
  return p;
}

void hook_free(void* p, const char* /*file*/, int /*line*/) {
  if (g_counting && p != nullptr) {
    const pause_counting pause;
    g_live->erase(p);
  }
  std::free(p);
}

void* hook_realloc(void* p, std::size_t n, const char* file, int line) {
  if (g_counting && p != nullptr) {
    const pause_counting pause;
    g_live->erase(p);
  }
  void* q = std::realloc(p, n);
  if (g_counting && q != nullptr) {
    const pause_counting pause;
    (*g_live)[q] = {n, file, line};
  }
  return q;
}

// A self-signed EC P-256 certificate and key in a temporary directory (as deploy/ suggests).
net::tls_identity make_identity(const std::filesystem::path& dir) {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* cert = X509_new();
  X509_set_version(cert, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
  X509_set_pubkey(cert, key);
  X509_NAME_add_entry_by_txt(X509_get_subject_name(cert), "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("localhost"), -1, -1, 0);
  X509_set_issuer_name(cert, X509_get_subject_name(cert));
  X509_sign(cert, key, EVP_sha256());
  net::tls_identity id{(dir / "cert.pem").string(), (dir / "key.pem").string()};
  FILE* f = std::fopen(id.cert_file.c_str(), "w");
  PEM_write_X509(f, cert);
  std::fclose(f);
  f = std::fopen(id.key_file.c_str(), "w");
  PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr);
  std::fclose(f);
  X509_free(cert);
  EVP_PKEY_free(key);
  return id;
}

struct tally {
  std::size_t requested = 0;
  std::size_t usable = 0;
  std::size_t count = 0;
  std::map<std::string, std::pair<std::size_t, std::size_t>> sites;  // bytes, allocations
};

tally take_tally() {
  const pause_counting pause;
  tally t;
  for (const auto& [p, a] : *g_live) {
    t.requested += a.size;
    t.usable += malloc_usable_size(p);
    ++t.count;
    auto& site =
        t.sites[std::string(a.file != nullptr ? a.file : "?") + ":" + std::to_string(a.line)];
    site.first += a.size;
    ++site.second;
  }
  return t;
}

}  // namespace

int main(int argc, char** argv) {
  // Before anything else touches OpenSSL: the hooks can only be set while nothing was allocated.
  if (CRYPTO_set_mem_functions(hook_malloc, hook_realloc, hook_free) != 1) {
    std::cerr << "gwx-tls-memory: cannot hook OpenSSL's allocator\n";
    return 1;
  }
  gwx::option_parser parser(
      "gwx-tls-memory", "gwx-tls-memory [--connections N] [options]",
      "Counts what OpenSSL keeps per idle server-side TLS connection of a gateway listener,\n"
      "by allocation site, after a full handshake (and the session ticket taken by the client).");
  parser.options().add_options()("connections",
                                 gwx::po::value<int>()->default_value(500)->value_name("N"),
                                 "handshakes to complete and keep")(
      "groups", gwx::po::value<std::string>()->default_value("")->value_name("LIST"),
      "key-exchange groups the client offers, e.g. P-256 (default: OpenSSL's, X25519 first)")(
      "ciphersuites", gwx::po::value<std::string>()->default_value("")->value_name("LIST"),
      "TLS 1.3 suites the client offers, e.g. TLS_CHACHA20_POLY1305_SHA256")(
      "tls12", gwx::po::bool_switch(), "the client speaks TLS 1.2 only")(
      "no-tickets", gwx::po::bool_switch(), "the server sends no session ticket")(
      "no-alpn", gwx::po::bool_switch(), "a tls+ listener (no ALPN) instead of wss")(
      "sites", gwx::po::value<std::size_t>()->default_value(24)->value_name("N"),
      "allocation sites listed, largest first");
  const auto vm = parser.parse(argc, argv);
  const int n = std::max(2, vm["connections"].as<int>());
  std::signal(SIGPIPE, SIG_IGN);
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    setrlimit(RLIMIT_NOFILE, &lim);
  }

  std::string dir_template =
      (std::filesystem::temp_directory_path() / "gwx-tls-memory-XXXXXX").string();
  if (mkdtemp(dir_template.data()) == nullptr) {
    std::cerr << "gwx-tls-memory: mkdtemp failed\n";
    return 1;
  }
  const std::filesystem::path dir(dir_template);
  std::shared_ptr<net::tls_context> server;
  std::shared_ptr<net::tls_context> client;
  try {
    const auto identity = make_identity(dir);
    net::tls_server_config sc;
    sc.identities = {identity};
    if (!vm["no-alpn"].as<bool>()) {
      sc.alpn = {"http/1.1"};
    }
    server = net::tls_context::make_server(std::move(sc));
    net::tls_client_config cc;
    cc.ca_file = identity.cert_file;
    client = net::tls_context::make_client(std::move(cc));
  } catch (const std::exception& e) {
    std::cerr << "gwx-tls-memory: " << e.what() << "\n";
    return 1;
  }
  std::filesystem::remove_all(dir);
  const auto server_ctx = server->native();
  const auto client_ctx = client->native();
  if (vm["no-tickets"].as<bool>()) {
    SSL_CTX_set_num_tickets(server_ctx.get(), 0);
  }
  if (vm["tls12"].as<bool>()) {
    SSL_CTX_set_max_proto_version(client_ctx.get(), TLS1_2_VERSION);
  }
  const auto& groups = vm["groups"].as<std::string>();
  const auto& suites = vm["ciphersuites"].as<std::string>();
  if ((!groups.empty() && SSL_CTX_set1_groups_list(client_ctx.get(), groups.c_str()) != 1) ||
      (!suites.empty() && SSL_CTX_set_ciphersuites(client_ctx.get(), suites.c_str()) != 1)) {
    std::cerr << "gwx-tls-memory: bad --groups or --ciphersuites\n";
    return 2;
  }
  static const unsigned char k_alpn[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
  SSL_CTX_set_alpn_protos(client_ctx.get(), k_alpn, sizeof(k_alpn));

  g_live = new std::unordered_map<void*, allocation>();
  // The first connection pays OpenSSL's lazy initialisation; it is left out of the count.
  std::vector<std::unique_ptr<net::tls_io>> before_handshake;
  std::vector<std::unique_ptr<net::tls_io>> kept;
  std::vector<int> fds;
  tally fresh;
  bool ok = true;
  for (int phase = 0; phase < 2; ++phase) {
    for (int i = 0; i < n; ++i) {
      int sv[2];
      if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) != 0) {
        std::perror("socketpair");
        return 1;
      }
      fds.push_back(sv[0]);
      g_counting = i > 0;
      auto srv = std::make_unique<net::tls_io>(server->new_ssl(), sv[0]);
      if (phase == 0) {
        close(sv[1]);
        before_handshake.push_back(std::move(srv));
        continue;
      }
      std::unique_ptr<net::tls_io> cli;
      {
        const pause_counting pause;
        cli = std::make_unique<net::tls_io>(client->new_ssl("localhost"), sv[1]);
      }
      for (int step = 0; step < 20 && !(srv->established() && cli->established()); ++step) {
        {
          const pause_counting pause;
          cli->handshake();
        }
        srv->handshake();
      }
      ok = ok && srv->established() && cli->established();
      char buf[256];
      std::size_t got = 0;
      {
        // The client reads the server's session ticket(s).
        const pause_counting pause;
        cli->read(buf, sizeof(buf), got);
        cli.reset();
        // The client's end stays open: the server side is idle, not closed.
        fds.push_back(sv[1]);
      }
      srv->read(buf, sizeof(buf), got);  // nothing there: the server side goes idle
      kept.push_back(std::move(srv));
    }
    g_counting = false;
    if (phase == 0) {
      fresh = take_tally();
      before_handshake.clear();
      g_live->clear();
      for (const int fd : fds) {
        close(fd);
      }
      fds.clear();
    }
  }
  if (!ok) {
    std::cerr << "gwx-tls-memory: a handshake did not complete\n";
    return 1;
  }
  const tally t = take_tally();
  const double per = n - 1;
  SSL* ssl = kept.back()->native();
  std::printf("%d idle server connections, %s %s, key exchange %s, ALPN %s, tickets %s\n", n,
              SSL_get_version(ssl), SSL_get_cipher(ssl),
              groups.empty() ? "OpenSSL default (X25519)" : groups.c_str(),
              vm["no-alpn"].as<bool>() ? "none" : "http/1.1",
              vm["no-tickets"].as<bool>() ? "none" : "1");
  std::printf("before the handshake: %.0f B in %.1f allocations per connection (%.0f B usable)\n",
              static_cast<double>(fresh.requested) / per, static_cast<double>(fresh.count) / per,
              static_cast<double>(fresh.usable) / per);
  std::printf("idle after it:        %.0f B in %.1f allocations per connection (%.0f B usable)\n",
              static_cast<double>(t.requested) / per, static_cast<double>(t.count) / per,
              static_cast<double>(t.usable) / per);
  std::printf("gwx's own tls_io:     %zu B (inside the session's allocation)\n",
              sizeof(net::tls_io));
  std::vector<std::pair<std::size_t, std::string>> sites;
  for (const auto& [site, v] : t.sites) {
    sites.emplace_back(v.first, site + " (" + std::to_string(v.second / (n - 1)) + " allocations)");
  }
  std::sort(sites.rbegin(), sites.rend());
  sites.resize(std::min(sites.size(), vm["sites"].as<std::size_t>()));
  std::printf("bytes per connection by OpenSSL source line:\n");
  for (const auto& [bytes, site] : sites) {
    std::printf("  %6.0f  %s\n", static_cast<double>(bytes) / per, site.c_str());
  }
  kept.clear();
  for (const int fd : fds) {
    close(fd);
  }
  return 0;
}
