#include "register/watch_stream.hpp"

#include <spdlog/spdlog.h>

#include <utility>

namespace gwx::registry {

watch_stream::watch_stream(std::string label, std::string peer,
                           grpc::CallbackServerContext* context, std::size_t max_events,
                           std::size_t max_bytes)
    : label_(std::move(label)),
      peer_(std::move(peer)),
      max_events_(max_events),
      max_bytes_(max_bytes),
      context_(context) {}

void watch_stream::start(snapshot_ptr snapshot) {
  std::unique_lock lock(mutex_);
  snapshot_ = std::move(snapshot);
  started_ = true;
  pump(lock);
}

namespace {
void settle_all(const std::deque<watch_stream::change_ptr>& changes) {
  for (const auto& c : changes) {
    c->settle();
  }
}
}  // namespace

std::deque<watch_stream::change_ptr> watch_stream::take_queue_locked() {
  std::deque<change_ptr> out;
  out.swap(queue_);
  queued_bytes_ = 0;
  return out;
}

bool watch_stream::push(const change_ptr& change) {
  std::unique_lock lock(mutex_);
  if (end_status_ || closed_) {
    lock.unlock();
    change->settle();
    return true;
  }
  if (queue_.size() >= max_events_ || queued_bytes_ + change->bytes > max_bytes_) {
    const auto dropped = take_queue_locked();
    end_status_ = grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                               "watcher fell too far behind; reconnect for a fresh snapshot");
    ending_since_ = clock::now();
    lock.unlock();
    settle_all(dropped);
    change->settle();
    return false;
  }
  queue_.push_back(change);
  queued_bytes_ += change->bytes;
  return true;
}

void watch_stream::flush() {
  std::unique_lock lock(mutex_);
  pump(lock);
}

void watch_stream::end(grpc::Status status) {
  std::unique_lock lock(mutex_);
  if (!end_status_) {
    end_status_ = std::move(status);
    ending_since_ = clock::now();
  }
  pump(lock);
}

watch_stream::stuck watch_stream::cancel_if_stuck(clock::time_point now,
                                                  clock::duration write_timeout,
                                                  clock::duration end_grace) {
  std::unique_lock lock(mutex_);
  // Without a write in flight nothing waits on the watcher: Finish, if due, is under way. And
  // while a write is in flight Finish has not been called, so OnDone has not freed context_.
  if (context_ == nullptr || !writing_ || cancelled_) {
    return stuck::no;
  }
  stuck why = stuck::no;
  if (end_status_ && now - ending_since_ >= end_grace) {
    why = stuck::ending;
  } else if (now - write_started_ >= write_timeout) {
    why = stuck::stalled;
  } else {
    return stuck::no;
  }
  if (!end_status_) {
    end_status_ = grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                               "watcher read nothing for too long; reconnect for a fresh snapshot");
    ending_since_ = now;
  }
  cancelled_ = true;
  cancelling_ = true;
  lock.unlock();
  context_->TryCancel();
  lock.lock();
  cancelling_ = false;
  // The write may have completed meanwhile and left the finish to us.
  pump(lock);
  return why;
}

bool watch_stream::done() const {
  std::lock_guard lock(mutex_);
  return done_;
}

std::size_t watch_stream::backlog_bytes() const {
  std::lock_guard lock(mutex_);
  return queued_bytes_;
}

void watch_stream::pump(std::unique_lock<std::mutex>& lock) {
  if (!started_ || writing_ || finished_ || cancelling_) {
    return;
  }
  if (end_status_) {
    finished_ = true;
    const auto status = *end_status_;
    lock.unlock();
    Finish(status);
    return;
  }
  const v1::WatchEvent* next = nullptr;
  if (snapshot_ && next_piece_ < snapshot_->size()) {
    next = &(*snapshot_)[next_piece_++];
  } else if (!queue_.empty()) {
    snapshot_.reset();
    in_flight_ = std::move(queue_.front());
    queue_.pop_front();
    queued_bytes_ -= in_flight_->bytes;
    next = &in_flight_->event;
  } else {
    return;
  }
  writing_ = true;
  write_started_ = clock::now();
  // More is waiting: let gRPC gather it into fewer, larger writes.
  grpc::WriteOptions options;
  if (!queue_.empty() || (snapshot_ && next_piece_ < snapshot_->size())) {
    options.set_buffer_hint();
  }
  lock.unlock();
  StartWrite(next, options);
}

void watch_stream::OnWriteDone(bool ok) {
  std::unique_lock lock(mutex_);
  writing_ = false;
  if (in_flight_) {
    in_flight_->settle();
    in_flight_.reset();
  }
  if (!ok && !end_status_) {
    // The stream broke (the watcher went away); Finish still has to be called.
    end_status_ = grpc::Status(grpc::StatusCode::CANCELLED, "watcher gone");
  }
  pump(lock);
}

void watch_stream::OnCancel() {
  end(grpc::Status::CANCELLED);
}

void watch_stream::OnDone() {
  bool overflowed = false;
  std::deque<change_ptr> dropped;
  {
    std::lock_guard lock(mutex_);
    closed_ = true;
    snapshot_.reset();
    dropped = take_queue_locked();
    if (in_flight_) {
      dropped.push_back(std::move(in_flight_));
    }
    overflowed = end_status_ && end_status_->error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED;
  }
  settle_all(dropped);
  if (!overflowed) {
    spdlog::info("watcher {} disconnected", label_);
  }
  // Last: once done() is true the owner may drop the stream at any moment.
  std::lock_guard lock(mutex_);
  done_ = true;
}

}  // namespace gwx::registry
