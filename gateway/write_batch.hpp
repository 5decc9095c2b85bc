#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "gateway/outbound.hpp"

namespace gwx::gateway {

/// The connections to write at the end of one turn of a loop, in the order they were first
/// asked, each once. A connection whose first bytes this turn are a shared buffer (a broadcast)
/// is listed with that buffer as its head: the batch keeps each distinct buffer alive once,
/// not once per recipient, so a broadcast queues nothing per recipient but one entry here (no
/// send queue, no reference count per recipient), and the connection writes the head (then
/// whatever it queued after it) when the batch runs.
///
/// Entries name their target by reference: a target that may go away before the batch runs
/// is handed to keep() meanwhile. Socket-free (a template over the target) for tests; used on
/// one loop, not thread-safe.
template <typename Target>
class write_batch {
 public:
  /// Lists `t` with no head: its bytes are in its own queue.
  void add(Target& t) { pending_.entries.push_back({&t, k_no_head}); }

  /// Lists `t` with `head`, the first bytes to write to it this turn.
  void add(Target& t, const wire_bytes& head) {
    auto& held = pending_.held;
    if (held.empty() || held.back() != head) {
      held.push_back(head);
    }
    pending_.entries.push_back({&t, held.size() - 1});
  }

  /// Keeps `t` alive until the batch it is listed in has run.
  void keep(std::shared_ptr<Target> t) { pending_.kept.push_back(std::move(t)); }

  /// Nothing listed or kept.
  bool empty() const { return pending_.entries.empty() && pending_.kept.empty(); }
  /// Entries listed.
  std::size_t size() const { return pending_.entries.size(); }
  /// Distinct head buffers held.
  std::size_t buffers_held() const { return pending_.held.size(); }

  /// Calls `write(Target&, const wire_bytes* head)` for every entry in order (head null for an
  /// entry without one; the target may keep a copy of it), then lets go of the buffers and of
  /// what was kept. Entries added while it runs form the next batch.
  template <typename Write>
  void run(Write&& write) {
    std::swap(running_, pending_);
    for (const auto& e : running_.entries) {
      write(*e.target, e.head == k_no_head ? nullptr : &running_.held[e.head]);
    }
    running_.entries.clear();
    running_.held.clear();
    running_.kept.clear();
  }

 private:
  static constexpr std::size_t k_no_head = static_cast<std::size_t>(-1);
  struct entry {
    Target* target;
    std::size_t head;  ///< index in held, or k_no_head
  };
  struct lists {
    std::vector<entry> entries;
    std::vector<wire_bytes> held;
    std::vector<std::shared_ptr<Target>> kept;
  };
  lists pending_;
  lists running_;
};

}  // namespace gwx::gateway
