#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace gwx::gateway {

/// Coarse deadlines for the many connections of one loop, without a timer per connection: a
/// hashed wheel of k_slots intrusive lists. An object embeds a hook (two pointers and its due
/// tick) instead of owning a timer; scheduling and cancelling are O(1), and advance() visits
/// only the slots passed since its last call. Sans-I/O: time is a tick count the caller
/// supplies (client_loop converts the steady clock). One loop only; not thread-safe.
class tick_wheel {
 public:
  static constexpr std::size_t k_slots = 256;

  /// What an object embeds to be scheduled; unscheduled when destroyed.
  class hook {
   public:
    hook() = default;
    hook(const hook&) = delete;
    hook& operator=(const hook&) = delete;
    ~hook() { cancel(); }

    bool scheduled() const { return next_ != nullptr; }
    /// Tick at which it expires (when scheduled).
    std::uint64_t due() const { return due_; }
    /// Unschedules it (nothing when it is not scheduled).
    void cancel();

   private:
    friend class tick_wheel;
    void link_before(hook& at);

    hook* prev_ = nullptr;
    hook* next_ = nullptr;
    std::uint64_t due_ = 0;
  };

  tick_wheel();
  tick_wheel(const tick_wheel&) = delete;
  tick_wheel& operator=(const tick_wheel&) = delete;

  /// The last tick advance() reached.
  std::uint64_t now() const { return now_; }

  /// Schedules `h` (moving it if it was scheduled) to expire at tick `due`; a tick already
  /// reached means the next one.
  void schedule(hook& h, std::uint64_t due);

  /// Expires every hook due at or before tick `now`, calling `expire(hook&)` for each once it
  /// is unscheduled. The callback may schedule or cancel any hook, or destroy any object,
  /// including the one it was called for.
  template <typename F>
  void advance(std::uint64_t now, F&& expire);

  /// Nothing is scheduled.
  bool empty() const;

 private:
  hook& slot(std::uint64_t tick) { return slots_[tick % k_slots]; }

  /// Sentinels: each slot is a circular list through its sentinel.
  std::array<hook, k_slots> slots_;
  std::uint64_t now_ = 0;
};

template <typename F>
void tick_wheel::advance(std::uint64_t now, F&& expire) {
  if (now <= now_) {
    return;
  }
  const std::uint64_t from = now_ + 1;
  // From here on anything scheduled lands after `now`, never in a slot being emptied.
  now_ = now;
  const std::uint64_t last = now - from >= k_slots ? from + k_slots - 1 : now;
  for (std::uint64_t t = from; t <= last; ++t) {
    hook& s = slot(t);
    if (s.next_ == &s) {
      continue;
    }
    // Detach the whole slot first: entries put back (due in a later round) or scheduled by a
    // callback are not visited twice.
    hook pending;
    pending.next_ = s.next_;
    pending.prev_ = s.prev_;
    pending.next_->prev_ = &pending;
    pending.prev_->next_ = &pending;
    s.next_ = s.prev_ = &s;
    while (pending.next_ != &pending) {
      hook& h = *pending.next_;
      h.cancel();
      if (h.due_ <= now) {
        expire(h);
      } else {
        h.link_before(slot(h.due_));
      }
    }
  }
}

}  // namespace gwx::gateway
