#include "common/net/send_queue.hpp"

#include <algorithm>

namespace gwx::net {
namespace {
// Owned segments start at least this big: always on the heap, so a segment moved inside the
// vector keeps its bytes where a gathered write points.
constexpr std::size_t k_min_owned = 64;
}  // namespace

send_queue::send_queue(std::size_t cap, std::size_t high_water) : min_segment_(k_min_owned) {
  reset(cap, high_water);
}

void send_queue::set_min_segment(std::size_t bytes) {
  min_segment_ = std::max(bytes, k_min_owned);
}

send_status send_queue::status_after_push() const {
  return memory_ > high_water_ ? send_status::backpressured : send_status::ok;
}

send_queue::segment& send_queue::owned_tail(std::size_t extra) {
  if (segments_.size() > writing_) {
    auto& back = segments_.back();
    if (!back.shared &&
        back.owned.size() + extra <= std::max(k_coalesce_limit, back.owned.capacity())) {
      return back;
    }
  }
  segment s;
  // The spare is reused only when it is not much bigger than needed: it counts in full.
  if (spare_.capacity() <= std::max(extra, min_segment_) * 4 &&
      memory_ + spare_.capacity() <= high_water_) {
    s.owned = std::move(spare_);
    s.owned.clear();
  }
  spare_ = std::string();
  s.owned.reserve(std::max(extra, min_segment_));
  memory_ += s.cost();
  segments_.push_back(std::move(s));
  return segments_.back();
}

send_status send_queue::push(std::string_view bytes) {
  if (cap_ != 0 && memory_ + bytes.size() > cap_) {
    return send_status::dropped;
  }
  auto& tail = owned_tail(bytes.size());
  const auto before = tail.cost();
  tail.owned.append(bytes);
  memory_ += tail.cost() - before;
  bytes_ += bytes.size();
  return status_after_push();
}

send_status send_queue::push(shared_bytes bytes) {
  const std::size_t cost = bytes->size() + k_shared_overhead;
  if (cap_ != 0 && memory_ + cost > cap_) {
    return send_status::dropped;
  }
  bytes_ += bytes->size();
  memory_ += cost;
  segment s;
  s.shared = std::move(bytes);
  segments_.push_back(std::move(s));
  return status_after_push();
}

std::string* send_queue::reserve(std::size_t max_bytes) {
  if (cap_ != 0 && memory_ + max_bytes > cap_) {
    return nullptr;
  }
  auto& tail = owned_tail(max_bytes);
  reserved_cost_ = tail.cost();
  reserved_size_ = tail.owned.size();
  return &tail.owned;
}

send_status send_queue::commit() {
  auto& tail = segments_.back();
  memory_ += tail.cost() - reserved_cost_;
  bytes_ += tail.owned.size() - reserved_size_;
  return status_after_push();
}

void send_queue::force(std::string_view bytes) {
  auto& tail = owned_tail(bytes.size());
  const auto before = tail.cost();
  tail.owned.append(bytes);
  memory_ += tail.cost() - before;
  bytes_ += bytes.size();
}

void send_queue::prepend(const shared_bytes& bytes, std::size_t written) {
  segment s;
  if (written == 0) {
    s.shared = bytes;
  } else {
    s.owned.reserve(std::max(bytes->size() - written, k_min_owned));
    s.owned.assign(*bytes, written);
  }
  bytes_ += s.view().size();
  memory_ += s.cost();
  segments_.insert(segments_.begin(), std::move(s));
}

const std::vector<asio::const_buffer>& send_queue::gather() {
  gathered_.clear();
  const std::size_t n = std::min(segments_.size(), k_max_gather);
  for (std::size_t i = 0; i < n; ++i) {
    const auto v = segments_[i].view();
    gathered_.emplace_back(v.data(), v.size());
  }
  writing_ = n;
  return gathered_;
}

void send_queue::written() {
  for (std::size_t i = 0; i < writing_; ++i) {
    auto& s = segments_[i];
    bytes_ -= s.view().size();
    memory_ -= s.cost();
    if (!s.shared && s.owned.capacity() <= k_coalesce_limit &&
        s.owned.capacity() > spare_.capacity()) {
      spare_ = std::move(s.owned);
    }
  }
  segments_.erase(segments_.begin(), segments_.begin() + static_cast<std::ptrdiff_t>(writing_));
  writing_ = 0;
  gathered_.clear();
}

void send_queue::clear() {
  for (std::size_t i = writing_; i < segments_.size(); ++i) {
    bytes_ -= segments_[i].view().size();
    memory_ -= segments_[i].cost();
  }
  segments_.resize(writing_);
  spare_ = std::string();
}

void send_queue::shrink(std::size_t keep) {
  if (spare_.capacity() > keep) {
    spare_ = std::string();
  }
  if (segments_.empty() && keep == 0) {
    segments_ = std::vector<segment>();
    gathered_ = std::vector<asio::const_buffer>();
  }
}

void send_queue::reset(std::size_t cap, std::size_t high_water) {
  cap_ = cap;
  high_water_ = high_water != 0 ? high_water : (cap != 0 ? cap / 2 : SIZE_MAX);
}

}  // namespace gwx::net
