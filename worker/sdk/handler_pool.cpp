#include "worker/sdk/handler_pool.hpp"

#include <spdlog/spdlog.h>

#include <functional>

namespace gwx::sdk {
namespace {

// Events run between two hand-overs to the network thread: bounds the delay of the first
// reply of a large batch.
constexpr std::size_t k_flush_every = 64;

// Queue slots kept between batches, and the payload capacity a slot keeps.
constexpr std::size_t k_keep_slots = 1024;
constexpr std::size_t k_keep_payload = 64 * 1024;

// What an event counts for against the bound.
std::size_t size_of(const client_event& e) {
  return e.payload.size() + handler_pool::k_event_overhead;
}

// Whether `lost` names the link `serial` as one whose gateway redelivers what it did not
// acknowledge (its events still queued here are then skipped).
template <typename LostLinks>
bool redelivered_elsewhere(const LostLinks& lost, std::uint64_t serial) {
  for (const auto& l : lost) {
    if (l.redelivers && l.link.serial == serial) {
      return true;
    }
  }
  return false;
}

class batch_sink final : public event_sink {
 public:
  batch_sink(cluster::cluster_core& core, cluster::outbox_scope& outbox)
      : core_(core), outbox_(outbox) {}

  void decide(const cluster::link_ref& link, link::v2::ConnectDecision decision) override {
    link::v2::Frame frame;
    *frame.mutable_decision() = std::move(decision);
    core_.send_on_link(link, std::move(frame));
  }

  void ack(const cluster::link_ref& link, std::uint64_t event_id) override {
    outbox_.ack(link, event_id);
  }

 private:
  cluster::cluster_core& core_;
  cluster::outbox_scope& outbox_;
};

}  // namespace

client_event& handler_pool::event_queue::add() {
  if (size == slots.size()) {
    slots.emplace_back();
  }
  return slots[size++];
}

void handler_pool::event_queue::recycle() {
  for (std::size_t i = 0; i < size; ++i) {
    auto& e = slots[i];
    e.connect.reset();
    if (e.payload.capacity() > k_keep_payload) {
      e.payload = std::string();
    }
  }
  size = 0;
  if (slots.size() > k_keep_slots) {
    slots.resize(k_keep_slots);
    slots.shrink_to_fit();
  }
}

handler_pool::handler_pool(std::size_t threads, handler& app, gateway_api& api,
                           cluster::cluster_core& core, std::size_t max_queued_bytes,
                           std::chrono::milliseconds stall_warn)
    : core_(core),
      inline_mode_(threads == 0),
      max_queued_bytes_(std::max<std::size_t>(max_queued_bytes, 1)),
      low_water_(max_queued_bytes_ / 2),
      writer_seq_(first_writer_seq(std::chrono::system_clock::now())),
      stall_warn_(std::max(stall_warn, std::chrono::milliseconds::zero())) {
  // Inline mode has one runner, used on the network thread.
  for (std::size_t i = 0; i < std::max<std::size_t>(threads, 1); ++i) {
    auto l = std::make_unique<lane>();
    l->runner = std::make_unique<event_runner>(app, api, core, writer_seq_);
    lanes_.push_back(std::move(l));
  }
}

handler_pool::~handler_pool() {
  stop();
}

void handler_pool::start() {
  if (started_) {
    return;
  }
  started_ = true;
  if (stall_warn_.count() > 0) {
    stall_watch_ = std::thread([this] { watch_stalls(); });
  }
  if (inline_mode_) {
    inline_started_ = true;
    core_.post([this] {
      if (!inline_queue_.empty() && !inline_scheduled_) {
        inline_scheduled_ = true;
        run_inline();
      }
    });
    return;
  }
  for (auto& l : lanes_) {
    l->thread = std::thread([this, raw = l.get()] { run(*raw); });
  }
}

void handler_pool::dispatch(const cluster::link_ref& link, link::v2::ClientEvent& event,
                            std::string_view payload, const link_clients::client_view* client) {
  if (inline_mode_) {
    if (inline_stopping_) {
      return;  // Not acknowledged: the gateway keeps it for another worker.
    }
    auto& slot = inline_queue_.add();
    slot.assign(link, event, payload, client);
    queued(size_of(slot));
    // Only this thread writes it: raising it needs neither a lock nor a locked instruction.
    inline_unfinished_.store(inline_unfinished_.load(std::memory_order_relaxed) + 1,
                             std::memory_order_release);
    // One task runs everything queued; a handler blocked in a query (the loop keeps running
    // under it) must not be overtaken by a second one.
    if (!inline_scheduled_ && !inline_running_ && inline_started_) {
      inline_scheduled_ = true;
      core_.post([this] { run_inline(); });
    }
    return;
  }
  const std::string_view client_id = client != nullptr ? client->client_id : event.client_id();
  auto& l = *lanes_[std::hash<std::string_view>{}(client_id) % lanes_.size()];
  std::lock_guard lock(l.mutex);
  if (l.stopping) {
    return;  // Not acknowledged: the gateway keeps it for another worker.
  }
  const bool was_empty = l.queue.empty();
  auto& slot = l.queue.add();
  slot.assign(link, event, payload, client);
  // Under the lane's lock: the runner cannot count it down before it is counted.
  queued(size_of(slot));
  if (was_empty) {
    l.wake.notify_one();
  }
}

void handler_pool::queued(std::size_t bytes) {
  const auto now = queued_bytes_.fetch_add(bytes) + bytes;
  if (now >= max_queued_bytes_ && !holding_) {
    holding_ = true;
    core_.hold_events(true);
  }
}

void handler_pool::ran(std::size_t bytes) {
  const auto before = queued_bytes_.fetch_sub(bytes);
  // Only the event that crosses the mark looks: the links were held at the bound, above it,
  // so every hold is followed by such a crossing once enough has run.
  if (before > low_water_ && before - bytes <= low_water_) {
    if (core_.on_network_thread()) {
      release_if_drained();
    } else {
      core_.post([this] { release_if_drained(); });
    }
  }
}

void handler_pool::release_if_drained() {
  if (holding_ && queued_bytes_.load() <= low_water_) {
    holding_ = false;
    core_.hold_events(false);
  }
}

void handler_pool::link_lost(const cluster::link_ref& link, bool gateway_redelivers) {
  if (inline_mode_) {
    if (inline_running_ || !inline_queue_.empty()) {
      // Events of that link still to run (or skip), or a handler below us (blocked in a query)
      // that may still write for one: run_inline() forgets the link once it is past them.
      inline_lost_.push_back({link, gateway_redelivers});
    } else {
      lanes_.front()->runner->link_lost(link);
    }
    return;
  }
  for (auto& l : lanes_) {
    std::lock_guard lock(l->mutex);
    l->lost.push_back({link, gateway_redelivers});
    if (gateway_redelivers) {
      l->skip_pending.store(true, std::memory_order_release);
    }
    l->wake.notify_one();
  }
}

bool handler_pool::skips(lane& l, const std::vector<lost_link>& taken, const client_event& event) {
  if (redelivered_elsewhere(taken, event.link.serial)) {
    return true;
  }
  if (!l.skip_pending.load(std::memory_order_acquire)) {
    return false;
  }
  std::lock_guard lock(l.mutex);
  return redelivered_elsewhere(l.lost, event.link.serial);
}

void handler_pool::stop() {
  if (stall_watch_.joinable()) {
    {
      std::lock_guard lock(stall_mutex_);
      stall_watch_stopping_ = true;
    }
    stall_wake_.notify_all();
    stall_watch_.join();
  }
  if (inline_mode_) {
    inline_stopping_ = true;
    if (started_ && !core_.on_network_thread()) {
      // What was dispatched before runs to the end (bounded by the loop's own progress).
      std::unique_lock lock(idle_mutex_);
      idle_changed_.wait_for(lock, std::chrono::seconds(30), [this] {
        return inline_unfinished_.load(std::memory_order_acquire) == 0 || core_.stopped();
      });
    }
    return;
  }
  for (auto& l : lanes_) {
    std::lock_guard lock(l->mutex);
    l->stopping = true;
    l->wake.notify_one();
  }
  for (auto& l : lanes_) {
    if (l->thread.joinable()) {
      l->thread.join();
    }
  }
}

bool handler_pool::wait_idle(std::chrono::steady_clock::time_point deadline) {
  if (inline_mode_) {
    std::unique_lock lock(idle_mutex_);
    return idle_changed_.wait_until(
        lock, deadline, [this] { return inline_unfinished_.load(std::memory_order_acquire) == 0; });
  }
  for (auto& l : lanes_) {
    std::unique_lock lock(l->mutex);
    if (!l->idle.wait_until(lock, deadline, [&l] { return l->queue.empty() && l->running == 0; })) {
      return false;
    }
  }
  return true;
}

std::size_t handler_pool::unfinished() const {
  if (inline_mode_) {
    return inline_unfinished_.load(std::memory_order_acquire);
  }
  std::size_t n = 0;
  for (const auto& l : lanes_) {
    std::lock_guard lock(l->mutex);
    n += l->queue.size + l->running;
  }
  return n;
}

void handler_pool::run_inline() {
  inline_scheduled_ = false;
  if (inline_running_) {
    return;  // a handler below us is blocked in a query: it runs the queue when it returns
  }
  inline_running_ = true;
  {
    cluster::outbox_scope outbox(core_);
    batch_sink sink(core_, outbox);
    std::size_t n = 0;
    while (!inline_queue_.empty()) {
      std::swap(inline_batch_, inline_queue_);
      for (std::size_t i = 0; i < inline_batch_.size; ++i) {
        auto& event = inline_batch_.slots[i];
        run_one(*lanes_.front(), event, sink,
                !inline_lost_.empty() && redelivered_elsewhere(inline_lost_, event.link.serial));
        if (++n % k_flush_every == 0) {
          outbox.flush();
        }
      }
      inline_batch_.recycle();
    }
  }
  inline_running_ = false;
  for (const auto& lost : inline_lost_) {
    lanes_.front()->runner->link_lost(lost.link);
  }
  inline_lost_.clear();
  std::lock_guard lock(idle_mutex_);
  // Counted down only once the batch's acks and commands are on the links.
  inline_unfinished_.store(inline_queue_.size, std::memory_order_release);
  idle_changed_.notify_all();
}

void handler_pool::run_one(lane& l, client_event& event, event_sink& sink, bool skip) {
  const auto bytes = size_of(event);
  if (skip) {
    skipped_.fetch_add(1, std::memory_order_relaxed);
    ran(bytes);
    return;
  }
  // Relaxed: the watch only needs to see the values eventually, and a call is long by then.
  l.call_kind.store(event.kind, std::memory_order_relaxed);
  l.call_since.store(std::chrono::steady_clock::now().time_since_epoch().count(),
                     std::memory_order_relaxed);
  l.runner->run(event, sink);
  l.call_since.store(0, std::memory_order_relaxed);
  handled_.fetch_add(1, std::memory_order_relaxed);
  ran(bytes);
}

std::size_t handler_pool::stalled_handlers() const {
  return stall_warn_.count() == 0 ? 0 : find_stalls().count;
}

handler_pool::stalls handler_pool::find_stalls() const {
  const auto now = std::chrono::steady_clock::now().time_since_epoch();
  stalls found;
  for (std::size_t i = 0; i < lanes_.size(); ++i) {
    const auto since = lanes_[i]->call_since.load(std::memory_order_relaxed);
    const auto running = now - std::chrono::steady_clock::duration(since);
    if (since == 0 || running <= stall_warn_) {
      continue;
    }
    ++found.count;
    if (running > found.longest_for) {
      found.longest = i;
      found.longest_for = running;
    }
  }
  return found;
}

void handler_pool::watch_stalls() {
  const auto period = std::min(stall_warn_, std::chrono::milliseconds(1000));
  std::unique_lock lock(stall_mutex_);
  while (!stall_wake_.wait_for(lock, period, [this] { return stall_watch_stopping_; })) {
    const auto found = find_stalls();
    if (found.count == 0 || !stall_log_.count()) {
      continue;
    }
    const auto kind = static_cast<link::v2::EventKind>(
        lanes_[found.longest]->call_kind.load(std::memory_order_relaxed));
    spdlog::warn(
        "{} has been running a handler call ({}) for {:.1f} s, past --handler-stall-warn-s "
        "({:.1f} s); {} handler call(s) stalled now: their clients wait, and once the handler "
        "queue is full every link does",
        inline_mode_ ? std::string("the network thread")
                     : "handler thread " + std::to_string(found.longest),
        link::v2::EventKind_Name(kind), std::chrono::duration<double>(found.longest_for).count(),
        std::chrono::duration<double>(stall_warn_).count(), found.count);
  }
}

void handler_pool::run(lane& l) {
  event_queue batch;
  std::vector<lost_link> lost;
  while (true) {
    {
      std::unique_lock lock(l.mutex);
      l.running = 0;
      if (l.queue.empty()) {
        l.idle.notify_all();
      }
      l.wake.wait(lock, [&] { return l.stopping || !l.queue.empty() || !l.lost.empty(); });
      if (l.queue.empty() && l.lost.empty()) {
        return;  // stopping, and everything taken before is done
      }
      std::swap(batch, l.queue);
      std::swap(lost, l.lost);
      l.skip_pending.store(false, std::memory_order_relaxed);
      l.running = batch.size;
    }
    {
      // The scope ends (hands the batch's output over) before the lane may report idle.
      cluster::outbox_scope outbox(core_);
      batch_sink sink(core_, outbox);
      std::size_t n = 0;
      for (std::size_t i = 0; i < batch.size; ++i) {
        auto& event = batch.slots[i];
        run_one(l, event, sink, skips(l, lost, event));
        if (++n % k_flush_every == 0) {
          outbox.flush();
        }
      }
    }
    batch.recycle();
    // After the events taken with them: those came before the link went down.
    for (const auto& entry : lost) {
      l.runner->link_lost(entry.link);
    }
    lost.clear();
  }
}

}  // namespace gwx::sdk
