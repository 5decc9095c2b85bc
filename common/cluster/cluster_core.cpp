#include "common/cluster/cluster_core.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <future>
#include <set>

#include "common/link/link_codec.hpp"
#include "common/registry/register_rpc.hpp"
#include "common/tls_options.hpp"

namespace gwx::cluster {
namespace {

// Longest stop() waits for links to flush before it stops the loop regardless.
constexpr std::chrono::milliseconds k_stop_limit{3000};

thread_local outbox_scope* tl_outbox = nullptr;

// Most bytes of message text an outbox keeps allocated between batches.
constexpr std::size_t k_keep_text = 64 * 1024;

// What a command made by a builder (send_each, request_each) counts for until it is built.
constexpr std::size_t k_queued_request_bytes = 256;

}  // namespace

core_options make_core_options(cluster_options options, link::v2::PeerRole role) {
  core_options o;
  o.registers = std::move(options.registers);
  o.token = std::move(options.token);
  o.register_tls = std::move(options.register_tls);
  o.query_timeout = options.query_timeout;
  o.link.secret = std::move(options.secret);
  o.link.name = std::move(options.name);
  o.link.role = role;
  o.link.keepalive_interval = options.keepalive_interval;
  o.link.keepalive_timeout = options.keepalive_timeout;
  if (options.link_tls.any()) {
    o.link.tls = make_tls_client(options.link_tls);
  }
  return o;
}

struct cluster_core::gather {
  explicit gather(asio::io_context& io) : timer(io) {}

  gather_handler done;
  gather_result result;
  std::vector<std::uint64_t> outstanding;
  asio::steady_timer timer;
  bool finished = false;
};

cluster_core::cluster_core(core_options options)
    : options_(std::move(options)),
      link_settings_(std::make_shared<const link_settings>(options_.link)) {}

cluster_core::~cluster_core() {
  stop();
}

void cluster_core::start() {
  if (started_.exchange(true)) {
    return;
  }
  work_.emplace(io_.get_executor());
  thread_ = std::thread([this] {
    io_.run();
    std::lock_guard lock(status_mutex_);
    loop_done_ = true;
    status_changed_.notify_all();
  });
  if (!options_.registers.empty()) {
    watcher_ = std::make_unique<registry::gateway_watcher>(
        options_.registers, options_.token, options_.link.name,
        [this](const std::vector<registry::gateway_entry>& set) {
          asio::post(io_, [this, set] { apply_set(set); });
        },
        options_.register_tls);
    watcher_->start();
  }
}

void cluster_core::stop() {
  if (!started_.load()) {
    return;
  }
  if (!stopped_.exchange(true, std::memory_order_acq_rel)) {
    begin_stop();
  }
  if (on_network_thread()) {
    // From one of its own callbacks: the network thread cannot wait for itself. It ends once
    // the links are closed; stop() from another thread (the destructor's, say) joins it.
    return;
  }
  std::lock_guard join_lock(join_mutex_);
  if (!thread_.joinable()) {
    return;
  }
  {
    std::unique_lock lock(status_mutex_);
    if (!status_changed_.wait_for(lock, k_stop_limit, [this] { return loop_done_; })) {
      spdlog::warn("links did not close within {} ms; stopping anyway", k_stop_limit.count());
      io_.stop();
    }
  }
  thread_.join();
}

void cluster_core::begin_stop() {
  {
    // Callers waiting for room give up: nothing will be delivered any more.
    std::lock_guard lock(post_mutex_);
    post_room_.notify_all();
  }
  if (watcher_) {
    watcher_->stop();
  }
  asio::post(io_, [this] {
    for (auto& [id, link] : links_) {
      link->stop();
    }
    links_.clear();
    std::vector<std::shared_ptr<gather>> open;
    for (auto& [rid, p] : pending_) {
      p.owner->result.missing_gateways.push_back(p.address);
      open.push_back(p.owner);
    }
    pending_.clear();
    drain_waiting_.clear();
    for (auto& g : open) {
      g->outstanding.clear();
      g->result.error = api_errc::stopped;
      finish_if_done(g);
    }
    publish_status();
  });
  work_.reset();
}

void cluster_core::start_drain(std::string reason) {
  {
    std::lock_guard lock(status_mutex_);
    if (drain_started_) {
      return;
    }
    drain_started_ = true;
  }
  asio::post(io_, [this, reason = std::move(reason)]() mutable {
    drain_reason_ = std::move(reason);
    for (auto& [id, link] : links_) {
      if (link->is_up()) {
        send_drain(*link);
      }
    }
    publish_drain();
  });
}

bool cluster_core::wait_drain_answered(std::chrono::steady_clock::time_point deadline) {
  std::unique_lock lock(status_mutex_);
  return status_changed_.wait_until(lock, deadline, [this] {
    return loop_done_ || (drain_applied_ && drain_unanswered_.empty());
  });
}

std::vector<std::string> cluster_core::drain_unanswered() const {
  std::lock_guard lock(status_mutex_);
  return drain_unanswered_;
}

std::uint64_t cluster_core::drain_generation() const {
  std::lock_guard lock(status_mutex_);
  return drain_generation_;
}

std::vector<std::string> cluster_core::flush(std::chrono::milliseconds timeout) {
  // Any request does: each link is ordered, so a gateway's answer to it proves the gateway
  // has processed everything sent to it before. A client count is the cheapest to answer.
  auto answered = std::make_shared<std::promise<gather_result>>();
  auto future = answered->get_future();
  if (!on_network_thread()) {
    request_each(
        [](const gateway_view&, link::v2::Command& cmd) {
          cmd.mutable_query()->set_kind(link::v2::QUERY_KIND_ALL_CLIENT_COUNT);
          return true;
        },
        timeout, [answered](gather_result r) { answered->set_value(std::move(r)); });
    // The gather ends at `timeout` by itself; the margin only covers a loop that stopped.
    if (future.wait_for(timeout + std::chrono::seconds(1)) == std::future_status::ready) {
      auto r = future.get();
      if (!r.error) {
        return std::move(r.missing_gateways);
      }
    }
  }
  std::vector<std::string> all;
  for (const auto& g : gateways()) {
    all.push_back(g.internal_address);
  }
  return all;
}

bool cluster_core::reload_link_tls() {
  bool ok = true;
  if (const auto& tls = link_settings_->tls) {
    if (const auto error = tls->reload()) {
      spdlog::error("link certificate reload failed, new links keep the previous certificates: {}",
                    *error);
      ok = false;
    } else {
      spdlog::info("link certificates reloaded ({}); new links use them, links up keep theirs",
                   tls->describe());
    }
  }
  if (watcher_) {
    ok = registry::log_register_tls_reload(watcher_->reload_tls(), options_.register_tls) && ok;
  }
  return ok;
}

void cluster_core::set_gateways(std::vector<registry::gateway_entry> gateways) {
  asio::post(io_, [this, set = std::move(gateways)] { apply_set(set); });
}

bool cluster_core::wait_ready(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  if (watcher_) {
    if (!watcher_->wait_for_snapshot(timeout)) {
      return false;
    }
    // An empty first snapshot changes nothing and so calls no hook: apply it explicitly.
    asio::post(io_, [this] { apply_set(watcher_->current()); });
  }
  std::unique_lock lock(status_mutex_);
  return status_changed_.wait_until(lock, deadline, [this] {
    return set_applied_ && std::all_of(status_.begin(), status_.end(),
                                       [](const gateway_status& g) { return g.linked; });
  });
}

std::vector<gateway_status> cluster_core::gateways() const {
  std::lock_guard lock(status_mutex_);
  return status_;
}

void cluster_core::hold_events(bool hold) {
  if (!on_network_thread()) {
    asio::post(io_, [this, hold] { hold_events(hold); });
    return;
  }
  events_held_ = hold;
  for (auto& [id, link] : links_) {
    link->hold_events(hold);
  }
}

std::size_t cluster_core::links_paused() const {
  std::size_t n = 0;
  for (const auto& [id, link] : links_) {
    n += link->reading_paused() ? 1 : 0;
  }
  return n;
}

bool cluster_core::on_network_thread() const {
  return io_.get_executor().running_in_this_thread();
}

void cluster_core::post(std::function<void()> task) {
  asio::post(io_, std::move(task));
}

bool cluster_core::run_until(const std::function<bool()>& done,
                             std::chrono::steady_clock::time_point deadline) {
  if (!on_network_thread()) {
    return false;
  }
  // poll() first: it also runs what the handler we are nested in queued privately (write
  // continuations); then wait a little for the answer.
  while (true) {
    io_.poll();
    if (done()) {
      return true;
    }
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline || io_.stopped()) {
      return false;
    }
    io_.run_one_until(std::min(deadline, now + std::chrono::milliseconds(5)));
  }
}

void cluster_core::send_on_link(const link_ref& link, link::v2::Frame frame) {
  outbound item;
  item.kind = outbound::route::link;
  item.key = link.gateway_id;
  item.serial = link.serial;
  item.frame = std::move(frame);
  enqueue(std::move(item));
}

void cluster_core::send_to_holder(std::string client_id, link::v2::Command cmd) {
  outbound item;
  item.kind = outbound::route::holder;
  item.key = std::move(client_id);
  *item.frame.mutable_command() = std::move(cmd);
  enqueue(std::move(item));
}

bool cluster_core::send_from_handler(std::string_view client_id, const message& msg) {
  if (stopped()) {
    return true;  // dropped, as every command after stop()
  }
  if (tl_outbox != nullptr && &tl_outbox->core_ == this) {
    tl_outbox->add_client_message(client_id, msg);
    return true;
  }
  return false;
}

void cluster_core::send_to_client(std::string_view client_id, message&& msg) {
  if (!send_from_handler(client_id, msg)) {
    transport::send_to_client(client_id, std::move(msg));
  }
}

void cluster_core::send_to_client(std::string_view client_id, const message& msg) {
  if (!send_from_handler(client_id, msg)) {
    transport::send_to_client(client_id, message(msg));
  }
}

void cluster_core::send_to_all(link::v2::Command cmd) {
  outbound item;
  item.kind = outbound::route::all;
  *item.frame.mutable_command() = std::move(cmd);
  enqueue(std::move(item));
}

void cluster_core::send_each(command_builder build) {
  outbound item;
  item.kind = outbound::route::each;
  item.build = std::move(build);
  enqueue(std::move(item));
}

void cluster_core::enqueue(outbound item) {
  if (stopped()) {
    return;
  }
  if (tl_outbox != nullptr && &tl_outbox->core_ == this) {
    tl_outbox->add(std::move(item));
    return;
  }
  if (on_network_thread()) {
    deliver(item);
    return;
  }
  const std::size_t bytes = item.queued_bytes();
  hand_over(bytes, [this, item = std::move(item)]() mutable { deliver(item); });
}

std::size_t cluster_core::outbound::queued_bytes() const {
  return kind == route::each ? k_queued_request_bytes : frame.ByteSizeLong() + key.size();
}

bool cluster_core::hand_over(std::size_t bytes, std::function<void()> task) {
  const auto ahead = posted_bytes_.fetch_add(bytes);
  if (ahead + bytes > k_max_posted_bytes && !started_.load()) {
    // Nothing delivers before start(), so waiting could last for ever: the write is dropped,
    // as a push to a gateway that takes nothing is.
    posted_bytes_.fetch_sub(bytes);
    push_dropped("this process has not started its links yet", ahead);
    return false;
  }
  if (ahead >= k_max_posted_bytes) {
    // Over the bound: wait until the network thread has delivered what is ahead (or stop).
    std::unique_lock lock(post_mutex_);
    ++post_waiters_;
    post_room_.wait(lock,
                    [&] { return posted_bytes_.load() - bytes < k_max_posted_bytes || stopped(); });
    --post_waiters_;
  }
  asio::post(io_, [this, bytes, task = std::move(task)] {
    task();
    if (posted_bytes_.fetch_sub(bytes) - bytes < k_max_posted_bytes && post_waiters_.load() > 0) {
      std::lock_guard lock(post_mutex_);
      post_room_.notify_all();
    }
  });
  return true;
}

bool cluster_core::push_room(gateway_link& link) {
  if (link.queued_bytes() < k_max_push_backlog) {
    return true;
  }
  push_dropped("gateway " + link.address() + " takes pushes slower than they are made: its link",
               link.queued_bytes());
  return false;
}

void cluster_core::push_dropped(std::string_view where, std::size_t bytes) {
  const auto dropped = pushes_dropped_.fetch_add(1, std::memory_order_relaxed) + 1;
  std::lock_guard lock(push_drop_mutex_);
  if (push_drop_log_.count()) {
    spdlog::warn("{} holds {} unsent bytes: pushes dropped ({} so far)", where, bytes, dropped);
  }
}

gateway_link* cluster_core::holder_of(std::string_view id) {
  // A client_id ends with its gateway's epoch (the gateway_id, 16 hex digits) and the
  // connection (16 more); everything before the connection is that gateway's id prefix.
  if (id.size() != 48 && id.size() != 72) {
    return nullptr;
  }
  const auto it = links_.find(id.substr(id.size() - 32, 16));
  if (it != links_.end() && it->second->is_up() &&
      id.substr(0, id.size() - 16) == it->second->id_prefix()) {
    return it->second.get();
  }
  return nullptr;
}

void cluster_core::deliver(outbound& item, std::string_view text) {
  if (item.kind == outbound::route::client_message) {
    const auto id = text.substr(item.text_at, item.id_size);
    auto* link = holder_of(id);
    if (link == nullptr || !push_room(*link)) {
      return;
    }
    // The same command send_to_holder would carry, encoded without building it.
    link->send_to_client(id, item.binary, text.substr(item.text_at + item.id_size, item.data_size));
    return;
  }
  // The message travels beside the header, not inside it.
  const std::string payload = link_codec::detach_payload(item.frame);
  switch (item.kind) {
    case outbound::route::client_message:
      return;
    case outbound::route::holder: {
      if (auto* link = holder_of(item.key); link != nullptr && push_room(*link)) {
        link->send(item.frame, payload);
      }
      return;
    }
    case outbound::route::all:
      for (auto& [id, link] : links_) {
        if (push_room(*link)) {
          link->send(item.frame, payload);
        }
      }
      return;
    case outbound::route::each: {
      link::v2::Frame frame;
      for (auto& [id, link] : links_) {
        if (!link->is_up()) {
          continue;
        }
        frame.Clear();
        if (push_room(*link) &&
            item.build(gateway_view{id, link->address(), true}, *frame.mutable_command())) {
          const std::string bytes = link_codec::detach_payload(frame);
          link->send(frame, bytes);
        }
      }
      return;
    }
    case outbound::route::link: {
      const auto it = links_.find(item.key);
      if (it != links_.end() && it->second->serial() == item.serial) {
        it->second->send(item.frame, payload);
      }
      return;
    }
  }
}

void cluster_core::deliver(batch& b) {
  for (auto& item : b.items) {
    deliver(item, b.text);
  }
  deliver_acks(b);
}

void cluster_core::deliver_acks(const batch& b) {
  auto* ids = ack_frame_.mutable_ack()->mutable_event_ids();
  for (std::uint32_t i = 0; i < b.ack_links.size(); ++i) {
    const auto& ref = b.ack_links[i];
    ids->Clear();
    for (const auto& [link, id] : b.acks) {
      if (link == i) {
        ids->Add(id);
      }
    }
    const auto it = links_.find(ref.gateway_id);
    if (it != links_.end() && it->second->serial() == ref.serial) {
      it->second->send(ack_frame_);
    }
  }
}

void cluster_core::batch::clear() {
  items.clear();
  text.clear();
  frame_bytes = 0;
  ack_links.clear();
  acks.clear();
}

void cluster_core::request_each(command_builder build, std::chrono::milliseconds timeout,
                                gather_handler done) {
  if (stopped()) {
    gather_result r;
    r.error = api_errc::stopped;
    done(std::move(r));
    return;
  }
  if (tl_outbox != nullptr && &tl_outbox->core_ == this) {
    tl_outbox->flush();
  }
  if (on_network_thread()) {
    start_gather(build, timeout, done);
    return;
  }
  // Counted with every other thread's writes: a thread asking in a loop waits at the
  // posted-bytes bound like a push loop (before start(), past it the request fails as not
  // started) instead of queueing without one.
  auto pending = std::make_shared<std::pair<command_builder, gather_handler>>(std::move(build),
                                                                              std::move(done));
  if (!hand_over(k_queued_request_bytes, [this, pending, timeout] {
        start_gather(pending->first, timeout, pending->second);
      })) {
    gather_result r;
    r.error = api_errc::stopped;
    pending->second(std::move(r));
  }
}

void cluster_core::start_gather(command_builder& build, std::chrono::milliseconds timeout,
                                gather_handler& done) {
  auto g = std::make_shared<gather>(io_);
  g->done = std::move(done);
  if (stopped()) {
    g->result.error = api_errc::stopped;
    finish_if_done(g);
    return;
  }
  link::v2::Frame frame;
  for (auto& [id, link] : links_) {
    frame.Clear();
    auto& cmd = *frame.mutable_command();
    if (!build(gateway_view{id, link->address(), link->is_up()}, cmd)) {
      continue;
    }
    if (!link->is_up()) {
      g->result.missing_gateways.push_back(link->address());
      continue;
    }
    const auto rid = next_request_id_++;
    cmd.set_request_id(rid);
    const std::string bytes = link_codec::detach_payload(frame);
    if (link->send(frame, bytes) == net::send_status::dropped) {
      // Not sent (over the link's frame limit), or this very send cut the link (the gateway
      // stopped reading): no answer can come.
      g->result.missing_gateways.push_back(link->address());
      continue;
    }
    pending_.emplace(rid, pending_request{g, id, link->serial(), link->address()});
    g->outstanding.push_back(rid);
    link->request_sent();
  }
  if (!g->outstanding.empty()) {
    g->timer.expires_after(timeout);
    g->timer.async_wait([this, weak = std::weak_ptr<gather>(g)](std::error_code ec) {
      auto g = weak.lock();
      if (ec || !g || g->finished) {
        return;
      }
      for (const auto rid : g->outstanding) {
        const auto it = pending_.find(rid);
        if (it != pending_.end()) {
          g->result.missing_gateways.push_back(it->second.address);
          request_ended(it->second);
          pending_.erase(it);
        }
      }
      g->outstanding.clear();
      finish_if_done(g);
    });
  }
  finish_if_done(g);
}

void cluster_core::on_reply(link::v2::Reply& reply) {
  const auto it = pending_.find(reply.request_id());
  if (it == pending_.end()) {
    return;  // Answered after its gather timed out, or a write's reply nobody waits for.
  }
  auto g = it->second.owner;
  request_ended(it->second);
  auto address = std::move(it->second.address);
  pending_.erase(it);
  std::erase(g->outstanding, reply.request_id());
  if (reply.error().empty()) {
    g->result.replies.push_back(gateway_reply{std::move(address), std::move(reply)});
  } else {
    // Often expected ("offline", "no worker named ..."): the caller decides what it means.
    spdlog::debug("gateway {} answered a request with an error: {}", address, reply.error());
    g->result.missing_gateways.push_back(address);
    g->result.errors.push_back(gateway_reply{std::move(address), std::move(reply)});
  }
  finish_if_done(g);
}

void cluster_core::drop_requests_of(const std::string& gateway_id, std::uint64_t serial) {
  std::vector<std::shared_ptr<gather>> touched;
  for (auto it = pending_.begin(); it != pending_.end();) {
    if (it->second.gateway_id == gateway_id && it->second.serial == serial) {
      auto& g = it->second.owner;
      g->result.missing_gateways.push_back(it->second.address);
      std::erase(g->outstanding, it->first);
      touched.push_back(g);
      it = pending_.erase(it);
    } else {
      ++it;
    }
  }
  for (auto& g : touched) {
    finish_if_done(g);
  }
}

void cluster_core::request_ended(const pending_request& p) {
  const auto it = links_.find(p.gateway_id);
  if (it != links_.end()) {
    it->second->request_ended(p.serial);
  }
}

void cluster_core::finish_if_done(const std::shared_ptr<gather>& g) {
  if (g->finished || !g->outstanding.empty()) {
    return;
  }
  g->finished = true;
  g->timer.cancel();
  auto& missing = g->result.missing_gateways;
  std::sort(missing.begin(), missing.end());
  missing.erase(std::unique(missing.begin(), missing.end()), missing.end());
  auto done = std::move(g->done);
  if (done) {
    // Run from a task of its own, never inside a link's read: the handler may make a blocking
    // call, which keeps the loop running until its answer is read from that same link.
    asio::post(io_, [done = std::move(done), result = std::move(g->result)]() mutable {
      done(std::move(result));
    });
  }
}

void cluster_core::apply_set(const std::vector<registry::gateway_entry>& gateways) {
  if (stopped()) {
    return;
  }
  std::set<std::string> wanted;
  for (const auto& entry : gateways) {
    wanted.insert(entry.gateway_id);
    unlisted_.erase(entry.gateway_id);
    const auto it = links_.find(entry.gateway_id);
    if (it != links_.end()) {
      it->second->update_entry(entry);
      continue;
    }
    gateway_link::callbacks cb;
    cb.on_up = [this](gateway_link& l) { on_link_up(l); };
    cb.on_down = [this](gateway_link& l, const std::string&) { on_link_down(l); };
    cb.on_frame = [this](gateway_link& l, link::v2::Frame& f, std::string_view payload) {
      on_frame(l, f, payload);
    };
    auto link = std::make_shared<gateway_link>(io_, entry, link_settings_, std::move(cb));
    link->hold_events(events_held_);
    links_.emplace(entry.gateway_id, link);
    spdlog::debug("gateway {} ({}) joined the cluster", entry.internal_address, entry.gateway_id);
    link->start();
  }
  for (auto it = links_.begin(); it != links_.end();) {
    if (wanted.count(it->first) != 0) {
      ++it;
      continue;
    }
    auto link = it->second;
    if (link->is_up()) {
      // A lapsed lease says the gateway did not reach the registers, not that it is gone: a
      // gateway that stops closes its links, and the keepalive finds one that vanished.
      if (unlisted_.insert(it->first).second) {
        spdlog::info(
            "gateway {} ({}) is no longer listed by the registers; its link stays "
            "until it closes",
            link->address(), link->gateway_id());
      }
      ++it;
      continue;
    }
    it = links_.erase(it);
    spdlog::info("gateway {} ({}) left the cluster", link->address(), link->gateway_id());
    link->stop();
  }
  publish_status(/*set_applied=*/true);
}

void cluster_core::on_link_up(gateway_link& link) {
  if (drain_reason_) {
    // Linked while draining: this gateway must hear it before it routes much here.
    send_drain(link);
    publish_drain();
  }
  publish_status();
  if (on_link_change_) {
    on_link_change_(link.address(), true);
  }
}

void cluster_core::on_link_down(gateway_link& link) {
  drop_requests_of(link.gateway_id(), link.serial());
  drain_answered(link.gateway_id(), link.serial());
  if (unlisted_.erase(link.gateway_id()) != 0) {
    // No longer listed and now gone: no reconnect.
    spdlog::info("gateway {} ({}) left the cluster", link.address(), link.gateway_id());
    link.stop();
    const auto it = links_.find(link.gateway_id());
    if (it != links_.end() && it->second.get() == &link) {
      links_.erase(it);
    }
  }
  publish_status();
  if (on_link_lost_) {
    on_link_lost_(link.ref(), link.gateway_redelivers());
  }
  if (on_link_change_) {
    on_link_change_(link.address(), false);
  }
}

void cluster_core::on_frame(gateway_link& link, link::v2::Frame& frame, std::string_view payload) {
  switch (frame.body_case()) {
    case link::v2::Frame::kReply:
      on_reply(*frame.mutable_reply());
      return;
    case link::v2::Frame::kEvent: {
      auto& event = *frame.mutable_event();
      auto& clients = link.clients();
      const auto client = clients.view(event);
      if (!client) {
        spdlog::debug("gateway {} sent an event of client {} without its info", link.address(),
                      event.client_id());
      }
      if (on_event_) {
        on_event_(link.ref(), event, payload, client ? &*client : nullptr);
      }
      clients.forget_closed(event);
      return;
    }
    case link::v2::Frame::kClient:
      link.clients().remember(frame.client());
      return;
    case link::v2::Frame::kDrainAck:
      spdlog::debug("gateway {} will send no further events", link.address());
      drain_answered(link.gateway_id(), link.serial());
      return;
    case link::v2::Frame::kDrain:
      spdlog::info("gateway {} asks this process to drain: {}", link.address(),
                   frame.drain().reason());
      if (on_drain_request_) {
        on_drain_request_(link.address(), frame.drain().reason());
      }
      return;
    default:
      spdlog::debug("gateway {} sent an unexpected frame ({})", link.address(),
                    static_cast<int>(frame.body_case()));
      return;
  }
}

void cluster_core::send_drain(gateway_link& link) {
  link::v2::Frame frame;
  frame.mutable_drain()->set_reason(*drain_reason_);
  link.send(frame);
  if (!link.is_up()) {
    return;  // the send cut the link: its gateway redelivers what was not acknowledged
  }
  drain_waiting_[link.gateway_id()] = link.serial();
  ++drains_sent_;
}

void cluster_core::drain_answered(const std::string& gateway_id, std::uint64_t serial) {
  const auto it = drain_waiting_.find(gateway_id);
  if (it == drain_waiting_.end() || it->second != serial) {
    return;
  }
  drain_waiting_.erase(it);
  publish_drain();
}

void cluster_core::publish_drain() {
  std::vector<std::string> waiting;
  for (const auto& [id, serial] : drain_waiting_) {
    const auto it = links_.find(id);
    waiting.push_back(it != links_.end() ? it->second->address() : id);
  }
  std::lock_guard lock(status_mutex_);
  drain_unanswered_ = std::move(waiting);
  drain_generation_ = drains_sent_;
  drain_applied_ = drain_reason_.has_value();
  status_changed_.notify_all();
}

void cluster_core::publish_status(bool set_applied) {
  std::vector<gateway_status> now;
  now.reserve(links_.size());
  for (const auto& [id, link] : links_) {
    gateway_status s;
    s.gateway_id = id;
    s.internal_address = link->address();
    s.listeners = link->entry().listeners;
    s.name = link->entry().name;
    s.linked = link->is_up();
    now.push_back(std::move(s));
  }
  // Under one lock with the new status: wait_ready() must never see the set applied with the
  // status of before it (an empty one says every gateway is linked).
  std::lock_guard lock(status_mutex_);
  status_ = std::move(now);
  set_applied_ = set_applied_ || set_applied;
  status_changed_.notify_all();
}

// ---- outbox_scope ----

outbox_scope::outbox_scope(cluster_core& core) : core_(core), previous_(tl_outbox) {
  tl_outbox = this;
  if (core_.on_network_thread()) {
    std::swap(batch_, core_.spare_outbox_);
  }
}

outbox_scope::~outbox_scope() {
  flush();
  tl_outbox = previous_;
  // flush() on the network thread leaves the delivered buffers here, emptied.
  if (batch_.empty() && core_.on_network_thread()) {
    std::swap(batch_, core_.spare_outbox_);
  }
}

void outbox_scope::ack(const link_ref& link, std::uint64_t event_id) {
  auto& links = batch_.ack_links;
  std::size_t i = links.size();
  while (i > 0 &&
         (links[i - 1].serial != link.serial || links[i - 1].gateway_id != link.gateway_id)) {
    --i;
  }
  if (i == 0) {
    links.push_back(link);
    i = links.size();
  }
  batch_.acks.emplace_back(static_cast<std::uint32_t>(i - 1), event_id);
}

void outbox_scope::add(cluster_core::outbound item) {
  batch_.frame_bytes += item.queued_bytes();
  batch_.items.push_back(std::move(item));
  flush_if_large();
}

void outbox_scope::flush_if_large() {
  if (batch_.text.size() + batch_.frame_bytes >= cluster_core::k_outbox_flush_bytes) {
    flush();
  }
}

void outbox_scope::add_client_message(std::string_view client_id, const message& msg) {
  auto& item = batch_.items.emplace_back();
  item.kind = cluster_core::outbound::route::client_message;
  item.text_at = batch_.text.size();
  item.id_size = static_cast<std::uint32_t>(client_id.size());
  item.data_size = static_cast<std::uint32_t>(msg.data.size());
  item.binary = msg.binary;
  batch_.text.append(client_id);
  batch_.text.append(msg.data);
  flush_if_large();
}

void outbox_scope::flush() {
  if (batch_.empty()) {
    return;
  }
  if (core_.stopped()) {
    batch_.clear();
    return;
  }
  cluster_core::batch out;
  std::swap(out, batch_);
  if (core_.on_network_thread()) {
    // Handlers running on the network thread: straight onto the links, in order.
    core_.deliver(out);
    // What was sent meanwhile (from a link's callbacks) stays for the next flush; otherwise
    // the buffers serve the next batch (but not the room a large message took).
    if (batch_.empty()) {
      out.clear();
      if (out.text.capacity() > k_keep_text) {
        out.text = std::string();
      }
      std::swap(out, batch_);
    }
    return;
  }
  const std::size_t bytes = out.bytes();
  core_.hand_over(bytes, [core = &core_, out = std::move(out)]() mutable { core->deliver(out); });
}

}  // namespace gwx::cluster
