#include "gateway/gateway_server.hpp"

#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <unistd.h>

#include <future>
#include <limits>
#include <optional>
#include <stdexcept>
#include <system_error>
#include <thread>

#include "common/client_id.hpp"
#include "common/metrics/registry.hpp"
#include "common/registry/lease_keeper.hpp"
#include "common/registry/register_rpc.hpp"
#include "common/tls_options.hpp"
#include "gateway/command_executor.hpp"
#include "gateway/handshake_limiter.hpp"
#include "gateway/listener_tls.hpp"
#include "gateway/refused_connection.hpp"
#include "gateway/worker_link.hpp"

namespace gwx::gateway {

struct gateway_server::listener {
  listener_config config;
  asio::ip::tcp::acceptor acceptor;
  std::atomic<std::size_t> connections{0};
  log_throttle full_log;  ///< from the accept handler only (one accept pending at a time)
  /// Unfinished handshakes per client address (max_handshakes_per_ip).
  std::shared_ptr<handshake_limiter> handshakes;
  log_throttle handshakes_log;  ///< from the accept handler only, like full_log
  /// The address of the connection being accepted (filled by the accept itself: no
  /// getpeername per connection).
  asio::ip::tcp::endpoint peer;

  listener(listener_config c, asio::io_context& io)
      : config(std::move(c)),
        acceptor(io),
        handshakes(handshake_limiter::create(config.max_handshakes_per_ip)) {}
};

namespace {

// Connections over max_connections: how long each may take to read its refusal, and how many
// may be doing so at once (past that, a plain close).
constexpr auto k_refusal_linger = std::chrono::seconds(2);
constexpr std::size_t k_max_refusing = 256;
// Descriptors clients may not take: worker links (and those still proving the secret), the
// refusals being told so, metrics scrapes, register and bus connections, the loops' own.
constexpr std::size_t k_reserved_descriptors = 512;

/// Raises the soft open-file limit to the hard one; returns how many clients may be open at
/// once so that links, refusals and metrics always find a descriptor (a flood of clients must
/// not keep workers from linking: accept would fail for everyone).
std::size_t client_descriptor_budget() {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0 || lim.rlim_cur == RLIM_INFINITY) {
    return std::numeric_limits<std::size_t>::max();
  }
  if (lim.rlim_cur < lim.rlim_max && lim.rlim_max != RLIM_INFINITY) {
    const auto before = lim.rlim_cur;
    lim.rlim_cur = lim.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &lim) == 0) {
      spdlog::info("open-file limit raised from {} to {} (its hard limit)", before, lim.rlim_cur);
    } else {
      lim.rlim_cur = before;
    }
  }
  const auto n = static_cast<std::size_t>(lim.rlim_cur);
  return n > 2 * k_reserved_descriptors ? n - k_reserved_descriptors : n / 2;
}

asio::ip::tcp::endpoint resolve(const std::string& host, std::uint16_t port) {
  std::error_code ec;
  auto addr = asio::ip::make_address(host == "localhost" ? "127.0.0.1" : host, ec);
  if (ec) {
    throw std::invalid_argument("'" + host + "' is not an IP address");
  }
  return {addr, port};
}

// Runs `question` on `loop` and waits for its answer until `deadline`; nothing when time ran out.
// The posted task owns the promise: a loop that answers after the caller stopped waiting sets a
// promise that still exists (a promise on the caller's stack would be gone by then).
template <typename Question>
auto ask_loop(asio::io_context& loop, Question question,
              std::chrono::steady_clock::time_point deadline)
    -> std::optional<decltype(question())> {
  using answer_type = decltype(question());
  auto answer = std::make_shared<std::promise<answer_type>>();
  auto future = answer->get_future();
  asio::post(loop, [answer, q = std::move(question)]() mutable { answer->set_value(q()); });
  if (future.wait_until(deadline) != std::future_status::ready) {
    return std::nullopt;
  }
  return future.get();
}

std::string format_remote(const asio::ip::tcp::socket& sock) {
  std::error_code ec;
  const auto ep = sock.remote_endpoint(ec);
  return ec ? std::string("?") : format_host_port(ep.address().to_string(), ep.port());
}

void open_acceptor(asio::ip::tcp::acceptor& acceptor, const asio::ip::tcp::endpoint& ep,
                   const std::string& what) {
  std::error_code ec;
  acceptor.open(ep.protocol(), ec);
  if (!ec) {
    acceptor.set_option(asio::ip::tcp::acceptor::reuse_address(true), ec);
  }
  if (!ec) {
    acceptor.bind(ep, ec);
  }
  if (!ec) {
    acceptor.listen(asio::socket_base::max_listen_connections, ec);
  }
  if (ec) {
    throw std::system_error(ec, "cannot listen on " + what);
  }
}

std::string with_port(const listener_config& c, std::uint16_t port) {
  return std::string(scheme_of(c.kind, c.tls)) + "://" + format_host_port(c.host, port) +
         (c.kind == framing::websocket ? c.path : std::string{});
}

}  // namespace

gateway_server::gateway_server(gateway_config config)
    : config_(std::move(config)),
      epoch_(new_epoch()),
      gateway_id_(epoch_to_hex(epoch_)),
      pool_(config_.threads) {
  if (config_.secret.empty()) {
    throw std::invalid_argument("--secret is required (the secret shared with workers)");
  }
  if (config_.listeners.empty()) {
    throw std::invalid_argument("at least one --listen URL is required");
  }
  if (config_.bus) {
    // Before the shards: in routed mode each shard tells the bus what its clients hold.
    config_.bus->gateway_id = gateway_id_;
    bus_ = bus_subscriber::make(
        *config_.bus, [this](bus::bus_command&& c) { return dispatch_bus(std::move(c)); });
    for (unsigned i = 0; i < pool_.size(); ++i) {
      bus_mailboxes_.push_back(std::make_shared<loop_mailbox>(pool_.loop(i)));
    }
  }
  for (unsigned i = 0; i < pool_.size(); ++i) {
    shards_.push_back(std::make_unique<shard>(*this, i, pool_.loop(i)));
  }
  for (unsigned from = 0; from < pool_.size(); ++from) {
    for (unsigned to = 0; to < pool_.size(); ++to) {
      mailboxes_.push_back(std::make_shared<loop_mailbox>(pool_.loop(to)));
    }
  }
}

gateway_server::~gateway_server() {
  stop();
  // Handlers still queued in the stopped loops may hold sessions and links, which reach into
  // their shard when destroyed: destroyed now, while the shards exist (the loops outlive them).
  pool_.discard_pending();
}

void gateway_server::start() {
  if (config_.link_tls.any()) {
    link_tls_ = make_tls_server(config_.link_tls);
  }
  auto& io0 = pool_.loop(0);
  internal_ = std::make_unique<asio::ip::tcp::acceptor>(io0);
  const auto internal_ep = resolve(config_.internal.host, config_.internal.port);
  open_acceptor(*internal_, internal_ep, "internal address " + config_.internal.to_string());
  const auto bound = internal_->local_endpoint();
  internal_bound_ = format_host_port(bound.address().to_string(), bound.port());

  if (!config_.advertise.empty()) {
    const auto hp = parse_host_port(config_.advertise);
    std::error_code ec;
    const auto addr = asio::ip::make_address(hp.host, ec);
    if (ec) {
      throw std::invalid_argument("--advertise must be IP:PORT (it is encoded in client_ids)");
    }
    advertised_ip_ = addr.to_string();
    advertised_port_ = hp.port == 0 ? bound.port() : hp.port;
  } else {
    if (bound.address().is_unspecified()) {
      throw std::invalid_argument(
          "--internal binds every interface; set --advertise IP:PORT to the address workers "
          "should use");
    }
    advertised_ip_ = bound.address().to_string();
    advertised_port_ = bound.port();
  }
  advertised_ = format_host_port(advertised_ip_, advertised_port_);
  id_prefix_ = client_id_prefix(advertised_ip_, advertised_port_, epoch_);

  max_clients_ = client_descriptor_budget();
  if (max_clients_ != std::numeric_limits<std::size_t>::max()) {
    spdlog::info(
        "at most {} clients at once on all listeners (the open-file limit less {} kept "
        "for links, refusals and metrics)",
        max_clients_, k_reserved_descriptors);
  }
  for (auto& lc : config_.listeners) {
    if (lc.tls && !lc.tls_state) {
      load_listener_tls(lc);
    }
    auto l = std::make_unique<listener>(lc, io0);
    open_acceptor(l->acceptor, resolve(lc.host, lc.port), lc.url);
    l->config.bound_url = with_port(lc, l->acceptor.local_endpoint().port());
    listeners_.push_back(std::move(l));
  }
  if (config_.metrics != nullptr) {
    attach_metrics(*config_.metrics);
  }
  for (auto& l : listeners_) {
    accept_next(*l);
  }
  accept_internal();

  registry::gateway_entry self;
  self.gateway_id = gateway_id_;
  self.internal_address = advertised_;
  for (const auto& l : listeners_) {
    self.listeners.push_back(l->config.bound_url);
  }
  self.name = config_.name;
  lease_ = std::make_unique<registry::lease_keeper>(config_.registers, config_.register_token, self,
                                                    config_.lease_ttl, config_.register_tls);
  for (auto& s : shards_) {
    asio::post(s->io(), [sh = s.get()] { sh->start(); });
  }
  pool_.start();
  running_ = true;
  if (bus_) {
    bus_->set_client_key("client." + id_prefix_);
    bus_->start();
  }
  lease_->start();
  spdlog::info("gateway {} ({}) serving on {} loop(s), internal {} advertised as {} ({} links)",
               gateway_id_, config_.name, pool_.size(), internal_bound_, advertised_,
               link_tls_ ? "TLS" : "plain");
  if (const auto& writes = shards_.front()->client_writes(); writes.batched()) {
    spdlog::info("client reads and writes: each loop turn's in one io_uring call each");
  } else if (config_.io_uring) {
    spdlog::warn("client reads and writes: io_uring not used ({}); one system call each",
                 writes.why_not_batched());
  }
}

void gateway_server::stop() {
  if (stopped_.exchange(true) || !running_) {
    if (bus_) {
      bus_->stop();
    }
    pool_.stop();
    return;
  }
  const auto started = std::chrono::steady_clock::now();
  if (bus_) {
    bus_->stop();
  }
  // Stop accepting first, so nobody arrives while the others are told to leave.
  ask_loop(
      pool_.loop(0),
      [this] {
        std::error_code ignored;
        for (auto& l : listeners_) {
          l->acceptor.close(ignored);
        }
        return true;
      },
      started + std::chrono::seconds(1));
  for (auto& s : shards_) {
    asio::post(s->io(), [sh = s.get(), goodbye = config_.goodbye] { sh->shutdown(goodbye); });
  }
  // Every loop's count and whether any has a worker; nothing when one did not answer in time.
  const auto deadline = started + config_.shutdown_timeout;
  const auto count_all = [this, deadline]() -> std::optional<std::pair<shard::drain_state, bool>> {
    std::pair<shard::drain_state, bool> all{};
    for (auto& s : shards_) {
      const auto answer = ask_loop(
          s->io(), [sh = s.get()] { return std::make_pair(sh->remaining(), sh->has_workers()); },
          deadline);
      if (!answer) {
        return std::nullopt;
      }
      all.first.open_sockets += answer->first.open_sockets;
      all.first.pending_events += answer->first.pending_events;
      all.second = all.second || answer->second;
    }
    return all;
  };
  // Wait until every socket closed and the workers acknowledged the last events (their CLOSE
  // events among them) — or nobody is left to acknowledge them, or time is up. `left` is the
  // last count every loop answered (a loop busy past the deadline ends the wait).
  std::optional<shard::drain_state> left;
  for (;;) {
    const auto count = count_all();
    if (!count) {
      break;
    }
    left = count->first;
    const bool workers = count->second;
    const bool done = left->open_sockets == 0 && (left->pending_events == 0 || !workers);
    if (done || std::chrono::steady_clock::now() >= deadline) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - started);
  if (!left) {
    spdlog::warn(
        "shutdown after {} ms: the loops did not answer in time (sockets and events "
        "left unknown)",
        took.count());
  } else if (left->open_sockets > 0 || left->pending_events > 0) {
    spdlog::warn(
        "shutdown after {} ms: {} client socket(s) still open, {} event(s) not "
        "acknowledged by a worker",
        took.count(), left->open_sockets, left->pending_events);
  } else {
    spdlog::info("shutdown complete in {} ms", took.count());
  }
  // Withdrawn last: workers drop their link when the register stops listing this gateway,
  // and they must stay linked to acknowledge the clients' last events.
  if (lease_) {
    lease_->stop();
    lease_.reset();
  }
  pool_.stop();
  // A link still open holds itself through its stream's handlers, and no loop runs to close it
  // any more: detached, it is freed with the loops' pending work (else LeakSanitizer, rightly,
  // reports every link open at exit).
  std::lock_guard lock(links_mutex_);
  for (auto& [id, weak] : links_) {
    if (auto link = weak.lock()) {
      link->detach_stream();
    }
  }
  links_.clear();
}

void gateway_server::attach_metrics(metrics::registry& reg) {
  events_.attach(reg);
  auto& open = reg.add_callback_gauge("gwx_gateway_connections",
                                      "Open client connections, by listener.", {"listener"});
  for (auto& l : listeners_) {
    l->config.metrics.attach(reg, l->config.bound_url);
    if (l->config.tls_state) {
      l->config.tls_state->attach(reg, l->config.bound_url);
    }
    metric_callbacks_.push_back(open.add({l->config.bound_url}, [c = &l->connections] {
      return static_cast<double>(c->load(std::memory_order_relaxed));
    }));
  }
  auto& links =
      reg.add_callback_gauge("gwx_gateway_worker_links", "Linked workers, by state.", {"state"});
  for (const bool draining : {false, true}) {
    metric_callbacks_.push_back(links.add({draining ? "draining" : "linked"}, [this, draining] {
      std::lock_guard lock(workers_mutex_);
      return static_cast<double>(
          std::count_if(workers_.begin(), workers_.end(),
                        [draining](const worker_ref& w) { return w.draining == draining; }));
    }));
  }
  metric_callbacks_.push_back(
      reg.add_callback_gauge("gwx_gateway_threads", "Event loops of this gateway.")
          .add({}, [n = shards_.size()] { return static_cast<double>(n); }));
  if (bus_) {
    attach_bus_metrics(reg);
  }
}

void gateway_server::attach_bus_metrics(metrics::registry& reg) {
  const auto& c = bus_->counters();
  const std::string mode = bus_->config().url.mode_name();
  const auto read = [](const std::atomic<std::uint64_t>& v) {
    return [&v] { return static_cast<double>(v.load(std::memory_order_relaxed)); };
  };
  metric_callbacks_.push_back(
      reg.add_callback_gauge("gwx_gateway_bus_connected",
                             "1 while subscribed to the push bus (and its bindings made).",
                             {"mode"})
          .add({mode}, [&c] { return c.connected.load() ? 1.0 : 0.0; }));
  metric_callbacks_.push_back(
      reg.add_callback_gauge("gwx_gateway_bus_bindings",
                             "Routing keys bound to this gateway's queue at the broker.", {"mode"})
          .add({mode}, read(c.bindings)));
  metric_callbacks_.push_back(
      reg.add_callback_counter("gwx_gateway_bus_connects_total",
                               "Times the push bus subscription was (re)established.", {"mode"})
          .add({mode}, read(c.connects)));
  metric_callbacks_.push_back(
      reg.add_callback_gauge("gwx_gateway_bus_pending_bytes",
                             "Bytes of bus commands handed to the event loops and not run yet.")
          .add({}, [p = bus_pending_] {
            return static_cast<double>(p->load(std::memory_order_relaxed));
          }));
  auto& messages = reg.add_callback_counter(
      "gwx_gateway_bus_messages_total",
      "Push bus messages: received, applied (handed to the loops), rejected (bad input), "
      "dropped (the loops were behind).",
      {"mode", "result"});
  metric_callbacks_.push_back(messages.add({mode, "received"}, read(c.received)));
  metric_callbacks_.push_back(messages.add({mode, "applied"}, read(c.applied)));
  metric_callbacks_.push_back(messages.add({mode, "rejected"}, read(c.rejected)));
  metric_callbacks_.push_back(messages.add({mode, "dropped"}, read(c.dropped)));
  auto& rejected = reg.add_callback_counter("gwx_gateway_bus_rejected_total",
                                            "Push bus messages refused, by reason.", {"reason"});
  for (const auto e :
       {bus::bus_error::too_large, bus::bus_error::invalid_json, bus::bus_error::too_deep,
        bus::bus_error::unknown_op, bus::bus_error::bad_field}) {
    metric_callbacks_.push_back(
        rejected.add({bus::bus_error_name(e)}, read(c.rejected_by[static_cast<std::size_t>(e)])));
  }
}

bool gateway_server::dispatch_bus(bus::bus_command&& c) {
  std::optional<unsigned> only;
  if (const auto* target = command_target(c.cmd)) {
    only = shard_of(*target);
    if (!only) {
      return true;  // a client of another gateway (or gone): nothing to do here
    }
  }
  // Bounded: what the loops have not run yet is counted, and past the bound the message is
  // dropped here (at-most-once) rather than queued without limit.
  const std::size_t cost = c.message_bytes + c.cmd.ByteSizeLong() + 128;
  if (bus_pending_->fetch_add(cost, std::memory_order_relaxed) + cost > config_.bus_max_pending) {
    bus_pending_->fetch_sub(cost, std::memory_order_relaxed);
    return false;
  }
  std::shared_ptr<const bus::bus_command> shared(
      new bus::bus_command(std::move(c)), [pending = bus_pending_, cost](bus::bus_command* p) {
        delete p;
        pending->fetch_sub(cost, std::memory_order_relaxed);
      });
  const auto run_on = [&](unsigned s) {
    bus_mailboxes_[s]->push([sh = shards_[s].get(), shared] {
      link::v2::Reply ignored;
      sh->execute(shared->cmd, shared->text(), ignored);
    });
  };
  if (only) {
    run_on(*only);
  } else {
    for (unsigned s = 0; s < shards_.size(); ++s) {
      run_on(s);
    }
  }
  return true;
}

void gateway_server::fill_bus_stats(link::v2::GatewayStats& stats) const {
  if (!bus_) {
    return;
  }
  const auto& c = bus_->counters();
  auto* b = stats.mutable_bus();
  b->set_url(bus_->config().url.redacted());
  b->set_mode(bus_->config().url.mode_name());
  b->set_connected(c.connected.load());
  b->set_received(c.received.load());
  b->set_applied(c.applied.load());
  b->set_rejected(c.rejected.load());
  b->set_dropped(c.dropped.load());
  b->set_bindings(c.bindings.load());
}

void gateway_server::warn_accept_error(const std::string& where, std::error_code ec) {
  // Out of descriptors makes every retry fail: one line per interval, with the count.
  const auto now = std::chrono::steady_clock::now();
  std::lock_guard lock(accept_log_mutex_);
  if (accept_errors_.count(now)) {
    spdlog::warn("accept on {} failed: {} ({} accept error(s) so far)", where, ec.message(),
                 accept_errors_.total());
  }
}

metrics::counter gateway_server::routed_counter(const std::string& worker) {
  if (config_.metrics == nullptr) {
    return {};
  }
  return config_.metrics
      ->add_counter("gwx_gateway_events_routed_total",
                    "Client events sent to workers, by worker name.", {"worker"})
      .with({worker});
}

std::size_t gateway_server::reload_tls() {
  std::size_t failed = 0;
  for (const auto& l : listeners_) {
    auto& tls = l->config.tls_state;
    if (!tls) {
      continue;
    }
    if (const auto error = tls->reload()) {
      ++failed;
      spdlog::error("{}: certificate reload failed, still serving the previous certificates: {}",
                    l->config.bound_url, *error);
    } else {
      spdlog::info("{}: certificates reloaded ({}); new connections get them", l->config.bound_url,
                   tls->context().describe());
    }
  }
  if (link_tls_) {
    if (const auto error = link_tls_->reload()) {
      ++failed;
      spdlog::error(
          "internal://{}: link certificate reload failed, new links keep the previous "
          "certificates: {}",
          internal_bound_, *error);
    } else {
      spdlog::info(
          "internal://{}: link certificates reloaded ({}); new links use them, links up "
          "keep theirs",
          internal_bound_, link_tls_->describe());
    }
  }
  if (lease_) {
    failed += registry::log_register_tls_reload(lease_->reload_tls(), config_.register_tls) ? 0 : 1;
  }
  return failed;
}

std::vector<std::string> gateway_server::bound_urls() const {
  std::vector<std::string> out;
  for (const auto& l : listeners_) {
    out.push_back(l->config.bound_url);
  }
  out.push_back("internal://" + internal_bound_);
  return out;
}

std::optional<unsigned> gateway_server::shard_of(const std::string& client_id) const {
  // The prefix holds this gateway's address and epoch; only the connection is parsed.
  const auto connection = client_id_connection(client_id);
  if (!connection || client_id.size() != id_prefix_.size() + 16 ||
      client_id.compare(0, id_prefix_.size(), id_prefix_) != 0) {
    return std::nullopt;
  }
  const auto loop = static_cast<unsigned>(*connection & 0xff);
  if (loop >= shards_.size()) {
    return std::nullopt;
  }
  return loop;
}

void gateway_server::client_closed(const listener_config& l) {
  for (auto& candidate : listeners_) {
    if (&candidate->config == &l) {
      candidate->connections.fetch_sub(1, std::memory_order_relaxed);
      clients_.fetch_sub(1, std::memory_order_relaxed);
      return;
    }
  }
  throw std::logic_error("unknown listener");
}

void gateway_server::accept_next(listener& l) {
  const auto target = next_shard_.fetch_add(1, std::memory_order_relaxed) % shards_.size();
  auto& s = *shards_[target];
  l.acceptor.async_accept(s.io(), l.peer, [this, &l, &s](std::error_code ec, client_socket sock) {
    if (ec == asio::error::operation_aborted) {
      return;
    }
    if (ec) {
      warn_accept_error(l.config.bound_url, ec);
      auto timer = std::make_shared<asio::steady_timer>(l.acceptor.get_executor(),
                                                        std::chrono::milliseconds(50));
      timer->async_wait([this, &l, timer](std::error_code) { accept_next(l); });
      return;
    }
    const bool listener_full =
        l.connections.fetch_add(1, std::memory_order_relaxed) >= l.config.max_connections;
    const bool gateway_full = clients_.fetch_add(1, std::memory_order_relaxed) >= max_clients_;
    // Counted against its address until its handshake is over or it closes: one host must not
    // fill max_connections with connections that never finish (or finish a byte at a time).
    handshake_slot place;
    bool address_full = false;
    if (!listener_full && !gateway_full) {
      place = l.handshakes->try_acquire(l.peer.address());
      address_full = !place;
      if (address_full && l.handshakes_log.count()) {
        spdlog::warn(
            "{}: {} holds max_handshakes_per_ip ({}) unfinished handshakes, refusing its new "
            "connections ({} such refusal(s) on this listener since the last such line)",
            l.config.bound_url, handshake_limiter::describe(l.peer.address()),
            l.config.max_handshakes_per_ip, l.handshakes_log.take_pending());
      }
    }
    if (listener_full || gateway_full || address_full) {
      l.connections.fetch_sub(1, std::memory_order_relaxed);
      clients_.fetch_sub(1, std::memory_order_relaxed);
      (listener_full  ? l.config.metrics.refused
       : address_full ? l.config.metrics.refused_handshakes_per_ip
                      : l.config.metrics.refused_open_files)
          .inc();
      if (listener_full && l.full_log.count()) {
        spdlog::warn("{}: max_connections ({}) reached, refusing new clients", l.config.bound_url,
                     l.config.max_connections);
      } else if (!listener_full && clients_full_log_.count()) {
        spdlog::warn(
            "{}: {} clients open, all the open-file limit allows besides what links, refusals "
            "and metrics need: refusing new clients (raise the limit: LimitNOFILE, ulimit -n)",
            l.config.bound_url, max_clients_);
      }
      // Told so (WebSocket: 503; TCP: a clean close), never a bare reset.
      asio::post(s.io(), [&l, this, sock = std::move(sock)]() mutable {
        refused_connection::start(std::move(sock), l.config.kind == framing::websocket,
                                  k_refusal_linger, refusing_, k_max_refusing);
      });
    } else {
      l.config.metrics.accepted.inc();
      asio::post(s.io(), [&s, &l, sock = std::move(sock), place = std::move(place),
                          peer = l.peer]() mutable {
        s.accept(l.config, std::move(sock), std::move(place), peer);
      });
    }
    accept_next(l);
  });
}

void gateway_server::accept_internal() {
  const auto target = next_shard_.fetch_add(1, std::memory_order_relaxed) % shards_.size();
  internal_->async_accept(
      shards_[target]->io(), [this, target](std::error_code ec, asio::ip::tcp::socket sock) {
        if (ec == asio::error::operation_aborted) {
          return;
        }
        if (!ec && unauthenticated_links_.load() >= k_max_unauthenticated_links) {
          // Bounded before anyone proved the secret: each such link may hold a few KiB only,
          // and only this many at once.
          link_refused(format_remote(sock), "", "too many links still authenticating");
          std::error_code ignored;
          sock.close(ignored);
        } else if (!ec) {
          unauthenticated_links_.fetch_add(1);
          const auto id = next_link_id_.fetch_add(1, std::memory_order_relaxed);
          asio::post(shards_[target]->io(), [this, target, id, sock = std::move(sock)]() mutable {
            auto link = std::make_shared<worker_link>(*this, static_cast<unsigned>(target), id,
                                                      std::move(sock));
            {
              std::lock_guard lock(links_mutex_);
              links_.emplace(id, link);
            }
            link->start();
          });
        } else {
          warn_accept_error("the internal listener", ec);
          auto timer = std::make_shared<asio::steady_timer>(internal_->get_executor(),
                                                            std::chrono::milliseconds(50));
          timer->async_wait([this, timer](std::error_code) { accept_internal(); });
          return;
        }
        accept_internal();
      });
}

net::ssl_ptr gateway_server::new_link_ssl() const {
  return link_tls_ ? link_tls_->new_ssl() : nullptr;
}

void gateway_server::link_refused(const std::string& remote, const std::string& name,
                                  const std::string& reason) {
  // Each peer name and reason is logged once per interval (at most 64 of them): a flood of bad
  // hellos costs a few lines, and every peer that is refused is still seen by name.
  constexpr std::size_t k_names_per_interval = 64;
  const auto now = std::chrono::steady_clock::now();
  std::lock_guard lock(accept_log_mutex_);
  if (links_refused_.count(now)) {
    refused_names_.clear();  // a new interval: each name may be logged once again
  }
  // A peer refused before it named itself (a TLS or preamble mismatch) is known by its host;
  // each reason counts apart, so one peer's mistake does not hide another's from that host.
  auto key = (name.empty() ? "@" + remote.substr(0, remote.rfind(':')) : name) + "\n" + reason;
  if (refused_names_.size() < k_names_per_interval &&
      refused_names_.insert(std::move(key)).second) {
    spdlog::warn("link from {}{} refused: {} ({} link(s) refused so far)", remote,
                 name.empty() ? "" : " (name '" + name + "')", reason, links_refused_.total());
  }
}

void gateway_server::link_handshake_over() {
  unauthenticated_links_.fetch_sub(1);
}

void gateway_server::worker_up(const std::shared_ptr<worker_link>& link) {
  std::lock_guard lock(workers_mutex_);
  workers_.push_back({link->id(), link});
  publish_workers();
}

void gateway_server::link_closed(std::uint64_t link_id) {
  std::lock_guard lock(links_mutex_);
  links_.erase(link_id);
}

void gateway_server::worker_down(std::uint64_t link_id) {
  std::lock_guard lock(workers_mutex_);
  std::erase_if(workers_, [link_id](const worker_ref& w) { return w.id == link_id; });
  publish_workers();
}

void gateway_server::publish_workers(const std::function<void()>& applied) {
  // Called with workers_mutex_ held. The copies may still arrive out of order: a loop's post
  // to itself (a link on that loop came up, went down or began to drain) waits in a private
  // queue until the handler returns, behind any later post from another thread. The version
  // sorts them out.
  const auto version = ++workers_version_;
  for (auto& s : shards_) {
    asio::post(s->io(), [sh = s.get(), version, copy = workers_, applied] {
      sh->set_workers(version, copy);
      if (applied) {
        applied();
      }
    });
  }
}

void gateway_server::worker_draining(const std::shared_ptr<worker_link>& link,
                                     std::function<void()> done) {
  struct countdown {
    std::size_t left;
    std::function<void()> done;
  };
  auto state = std::make_shared<countdown>(countdown{shards_.size(), std::move(done)});
  auto& link_loop = shards_[link->loop()]->io();
  std::lock_guard lock(workers_mutex_);
  for (auto& w : workers_) {
    if (w.id == link->id()) {
      w.draining = true;
    }
  }
  // Each shard applies the new set (or ignores it for a newer one, which has the draining flag
  // too), then reports to the link's loop. Events a shard routed to the link before were
  // posted there earlier, so the report arrives after them.
  publish_workers([state, &link_loop] {
    asio::post(link_loop, [state] {
      if (--state->left == 0) {
        state->done();
      }
    });
  });
}

bool gateway_server::request_drain(const std::string& name) {
  std::lock_guard lock(workers_mutex_);
  bool found = false;
  for (auto& w : workers_) {
    if (w.link->name() == name) {
      found = true;
      asio::post(shards_[w.link->loop()]->io(),
                 [link = w.link] { link->request_drain("requested by an operator"); });
    }
  }
  return found;
}

std::vector<std::string> gateway_server::draining_names() const {
  std::lock_guard lock(workers_mutex_);
  std::vector<std::string> out;
  for (const auto& w : workers_) {
    if (w.draining) {
      out.push_back(w.link->name());
    }
  }
  return out;
}

std::vector<worker_ref> gateway_server::worker_refs() const {
  std::lock_guard lock(workers_mutex_);
  return workers_;
}

std::vector<std::string> gateway_server::worker_names() const {
  std::lock_guard lock(workers_mutex_);
  std::vector<std::string> out;
  for (const auto& w : workers_) {
    out.push_back(w.link->name());
  }
  return out;
}

}  // namespace gwx::gateway
