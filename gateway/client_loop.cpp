#include "gateway/client_loop.hpp"

#include <spdlog/spdlog.h>

#include "gateway/client_session.hpp"

namespace gwx::gateway {
namespace {
// Spare send queues kept per loop, and the storage each may keep (beyond it, freed).
constexpr std::size_t k_spare_queues = 64;
constexpr std::size_t k_spare_parsers = 64;
constexpr std::size_t k_spare_bytes = 4096;
// A client's queue starts its buffers at this size: a read's worth of small replies (eight
// 32-byte echoes are 272 bytes) fits without regrowing, and the spare buffer of the last write
// (up to four times this) is reused for the next instead of growing one from 64 bytes again.
constexpr std::size_t k_client_segment = 512;
}  // namespace

client_loop::client_loop(asio::io_context& io, session_events& events, bool io_uring)
    : io_(io),
      events_(events),
      origin_(clock::now()),
      timer_(io),
      reads_(io),
      sender_(io_uring),
      receiver_(io_uring) {
  reads_.after_each_turn([this] { read_listed(); });
}

std::uint64_t client_loop::tick_of(clock::time_point t) const {
  if (t <= origin_) {
    return 0;
  }
  return static_cast<std::uint64_t>((t - origin_) / k_tick);
}

void client_loop::schedule(client_session& s, clock::time_point deadline) {
  // Rounded up: the tick that covers the deadline has fully passed when it fires.
  wheel_.schedule(s, tick_of(deadline) + 1);
  if (!ticking_) {
    ticking_ = true;
    arm();
  }
}

void client_loop::arm() {
  timer_.expires_at(origin_ + k_tick * static_cast<std::int64_t>(tick_of(clock::now()) + 1));
  timer_.async_wait([this](std::error_code ec) {
    if (!ec) {
      on_tick();
    }
  });
}

void client_loop::on_tick() {
  wheel_.advance(tick_of(clock::now()), [](tick_wheel::hook& h) {
    auto& session = static_cast<client_session&>(h);
    // Kept alive through its own callback (closing may erase it from its directory).
    const auto keep = session.shared_from_this();
    session.on_deadline();
  });
  if (wheel_.empty()) {
    ticking_ = false;
    return;
  }
  arm();
}

void client_loop::flush_later(client_session& s) {
  to_flush_.add(s);
  post_flush();
}

void client_loop::keep_until_flushed(std::shared_ptr<client_session> s) {
  to_flush_.keep(std::move(s));
  post_flush();
}

void client_loop::post_flush() {
  if (!flush_posted_) {
    flush_posted_ = true;
    asio::post(io_, [this] { flush_all(); });
  }
}

void client_loop::flush_all() {
  flush_posted_ = false;
  to_flush_.run([](client_session& s, const wire_bytes* head) { s.flush(head); });
  write_listed();
}

void client_loop::write_later(client_session& s, const wire_bytes& head) {
  sender_.add_send(s.native_handle(), asio::const_buffer(head->data(), head->size()),
                   writes_.size());
  writes_.push_back({s.shared_from_this(), head});
}

void client_loop::write_later(client_session& s, const std::vector<asio::const_buffer>& bufs) {
  sender_.add_send(s.native_handle(), bufs.data(), bufs.size(), writes_.size());
  writes_.push_back({s.shared_from_this(), nullptr});
}

void client_loop::write_listed() {
  if (writes_.empty()) {
    return;
  }
  std::swap(writes_, running_writes_);
  const bool batched = sender_.batched();
  sender_.run([this](std::uint64_t tag, long result) {
    auto& w = running_writes_[tag];
    w.session->on_batched_write(w.head ? &w.head : nullptr, result);
  });
  running_writes_.clear();
  note_unbatched(sender_, batched, "writes", "write");
  if (!writes_.empty()) {
    post_flush();  // listed while the results came in: written next turn
  }
}

void client_loop::read_later(client_session& s) {
  to_read_.push_back(s.shared_from_this());
}

void client_loop::read_listed() {
  if (to_read_.empty()) {
    return;
  }
  if (!read_buffer_) {
    read_buffer_ = std::make_unique_for_overwrite<char[]>(k_read_buffer);
  }
  std::swap(to_read_, running_reads_);
  const std::size_t share = std::min(k_read_most, k_read_buffer / running_reads_.size());
  for (std::size_t i = 0; i < running_reads_.size(); ++i) {
    receiver_.add_recv(running_reads_[i]->native_handle(),
                       asio::buffer(read_buffer_.get() + i * share, share), i);
  }
  const bool batched = receiver_.batched();
  receiver_.run([this, share](std::uint64_t tag, long result) {
    running_reads_[tag]->on_batched_read(read_buffer_.get() + tag * share, result);
  });
  running_reads_.clear();
  note_unbatched(receiver_, batched, "reads", "read");
}

void client_loop::note_unbatched(const net::batched_io& io, bool was_batched, const char* what,
                                 const char* each) {
  if (was_batched && !io.batched()) {
    spdlog::warn("client {}: {}; this loop makes one system call per {} from now on", what,
                 io.why_not_batched(), each);
  }
}

bool client_loop::hold_unfinished(client_session& s, std::size_t& held, std::size_t now) {
  if (held == 0 && now != 0) {
    s.unfinished_older_ = newest_unfinished_;
    s.unfinished_newer_ = nullptr;
    (newest_unfinished_ != nullptr ? newest_unfinished_->unfinished_newer_ : oldest_unfinished_) =
        &s;
    newest_unfinished_ = &s;
  } else if (held != 0 && now == 0) {
    (s.unfinished_older_ != nullptr ? s.unfinished_older_->unfinished_newer_ : oldest_unfinished_) =
        s.unfinished_newer_;
    (s.unfinished_newer_ != nullptr ? s.unfinished_newer_->unfinished_older_ : newest_unfinished_) =
        s.unfinished_older_;
    s.unfinished_older_ = s.unfinished_newer_ = nullptr;
  }
  unfinished_ = unfinished_ - held + now;
  held = now;
  if (now == 0) {
    return true;
  }
  while (unfinished_ > unfinished_budget_ && oldest_unfinished_ != &s) {
    // Kept alive through its close (which may erase it from its directory); letting go unlinks it.
    const auto oldest = oldest_unfinished_->shared_from_this();
    oldest->let_go_unfinished();
  }
  return unfinished_ <= unfinished_budget_;
}

std::unique_ptr<net::send_queue> client_loop::take_queue(std::size_t cap) {
  if (spare_queues_.empty()) {
    auto q = std::make_unique<net::send_queue>(cap);
    q->set_min_segment(k_client_segment);
    return q;
  }
  auto q = std::move(spare_queues_.back());
  spare_queues_.pop_back();
  q->reset(cap);
  return q;
}

std::unique_ptr<codec::ws::frame_parser> client_loop::take_parser(std::size_t max_message) {
  if (spare_parsers_.empty()) {
    return std::make_unique<codec::ws::frame_parser>(max_message);
  }
  auto p = std::move(spare_parsers_.back());
  spare_parsers_.pop_back();
  p->reset(max_message);
  return p;
}

void client_loop::give_back(std::unique_ptr<codec::ws::frame_parser> parser) {
  if (spare_parsers_.size() < k_spare_parsers) {
    spare_parsers_.push_back(std::move(parser));
  }
}

void client_loop::give_back(std::unique_ptr<net::send_queue> queue) {
  if (spare_queues_.size() >= k_spare_queues) {
    return;
  }
  queue->shrink(k_spare_bytes);
  spare_queues_.push_back(std::move(queue));
}

}  // namespace gwx::gateway
