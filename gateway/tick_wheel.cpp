#include "gateway/tick_wheel.hpp"

#include <algorithm>

namespace gwx::gateway {

void tick_wheel::hook::cancel() {
  if (next_ == nullptr) {
    return;
  }
  prev_->next_ = next_;
  next_->prev_ = prev_;
  prev_ = next_ = nullptr;
}

void tick_wheel::hook::link_before(hook& at) {
  prev_ = at.prev_;
  next_ = &at;
  at.prev_->next_ = this;
  at.prev_ = this;
}

tick_wheel::tick_wheel() {
  for (auto& s : slots_) {
    s.prev_ = s.next_ = &s;
  }
}

void tick_wheel::schedule(hook& h, std::uint64_t due) {
  h.cancel();
  h.due_ = std::max(due, now_ + 1);
  h.link_before(slot(h.due_));
}

bool tick_wheel::empty() const {
  return std::all_of(slots_.begin(), slots_.end(), [](const hook& s) { return s.next_ == &s; });
}

}  // namespace gwx::gateway
