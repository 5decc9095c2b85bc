#include "common/bus/bus_publisher.hpp"

#include <amqp.h>
#include <hiredis/hiredis.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include "common/registry/backoff.hpp"

namespace gwx::bus {
namespace {

constexpr auto k_connect_timeout = std::chrono::seconds(5);
/// Messages sent per round (one pipelined write to Redis).
constexpr std::size_t k_batch = 256;

amqp_bytes_t bytes_of(const std::string& s) {
  return amqp_bytes_t{s.size(), const_cast<char*>(s.data())};
}

}  // namespace

bus_publisher::bus_publisher(bus_url url, std::size_t max_queue_bytes)
    : url_(std::move(url)), max_queue_bytes_(max_queue_bytes) {}

bus_publisher::~bus_publisher() {
  stop(std::chrono::milliseconds(0));
}

void bus_publisher::start() {
  if (thread_.joinable()) {
    return;
  }
  thread_ = std::thread([this] { run(); });
}

void bus_publisher::stop(std::chrono::milliseconds flush_timeout) {
  if (!thread_.joinable()) {
    return;
  }
  flush(flush_timeout);
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    if (sending_fd_ >= 0) {
      // A send the broker does not take, or a reply it does not give, would keep the bus
      // thread (and so this join) waiting: the batch is dropped with its connection.
      ::shutdown(sending_fd_, SHUT_RDWR);
    }
  }
  cv_.notify_all();
  thread_.join();
}

bool bus_publisher::publish(std::vector<bus_publication> messages) {
  std::size_t bytes = 0;
  for (const auto& m : messages) {
    bytes += m.json.size() + m.routing_key.size();
  }
  {
    std::lock_guard lock(mutex_);
    if (stopping_ || queued_bytes_ + bytes > max_queue_bytes_) {
      dropped_.fetch_add(messages.size(), std::memory_order_relaxed);
      // Logged outside the lock would need a copy: warn() takes its own lock below instead.
    } else {
      queued_bytes_ += bytes;
      enqueued_ += messages.size();
      for (auto& m : messages) {
        queue_.push_back(std::move(m));
      }
      cv_.notify_all();
      return true;
    }
  }
  warn("publish queue full (" + std::to_string(max_queue_bytes_) + " bytes): bus messages dropped");
  return false;
}

bool bus_publisher::flush(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  const auto target = enqueued_;
  return cv_.wait_for(lock, timeout, [&] { return done_ >= target; });
}

void bus_publisher::warn(const std::string& what) {
  const auto now = std::chrono::steady_clock::now();
  {
    std::lock_guard lock(mutex_);
    if (!warn_log_.count(now)) {
      return;
    }
  }
  spdlog::warn("bus {}: {}", url_.redacted(), what);
}

bool bus_publisher::connect() {
  if (url_.kind == bus_kind::redis) {
    timeval tv{static_cast<time_t>(k_connect_timeout.count()), 0};
    redis_ = redisConnectWithTimeout(url_.host.c_str(), url_.port, tv);
    if (redis_ == nullptr || redis_->err != 0) {
      warn(std::string("cannot connect: ") + (redis_ != nullptr ? redis_->errstr : "no memory"));
      disconnect();
      return false;
    }
    redisSetTimeout(redis_, tv);
    if (!url_.password.empty()) {
      auto* r = static_cast<redisReply*>(
          url_.user.empty()
              ? redisCommand(redis_, "AUTH %b", url_.password.data(), url_.password.size())
              : redisCommand(redis_, "AUTH %b %b", url_.user.data(), url_.user.size(),
                             url_.password.data(), url_.password.size()));
      const bool ok = r != nullptr && r->type != REDIS_REPLY_ERROR;
      if (!ok) {
        warn("authentication failed" +
             (r != nullptr ? ": " + std::string(r->str, r->len) : std::string()));
      }
      if (r != nullptr) {
        freeReplyObject(r);
      }
      if (!ok) {
        disconnect();
        return false;
      }
    }
  } else {
    amqp_ = std::make_unique<amqp_connection>();
    // No heartbeats: this connection only writes, and a dead broker shows on the next write.
    if (auto e = amqp_->open(url_, k_connect_timeout, 0); !e.empty()) {
      warn(e);
      disconnect();
      return false;
    }
  }
  connected_.store(true);
  return true;
}

int bus_publisher::connection_fd() const {
  return redis_ != nullptr ? redis_->fd : amqp_ ? amqp_get_sockfd(amqp_->state()) : -1;
}

bool bus_publisher::idle_connection_alive() {
  // Nothing is expected from the broker on an idle publishing connection (no heartbeats were
  // negotiated): anything readable is a close or the end of the stream.
  const int fd = connection_fd();
  if (fd < 0) {
    return false;
  }
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 0) == 0;
}

void bus_publisher::disconnect() {
  connected_.store(false);
  if (redis_ != nullptr) {
    redisFree(redis_);
    redis_ = nullptr;
  }
  amqp_.reset();
}

bool bus_publisher::send_redis(const std::vector<bus_publication>& batch) {
  // Pipelined: every PUBLISH written at once, then the replies read.
  for (const auto& m : batch) {
    redisAppendCommand(redis_, "PUBLISH %b %b", url_.channel.data(), url_.channel.size(),
                       m.json.data(), m.json.size());
  }
  // An error reply (NOAUTH, NOPERM on the channel, a read-only replica…) is a message the
  // broker did not publish: the batch counts as dropped, said once with the broker's reason,
  // and the connection is made again (an ACL or password fixed meanwhile takes effect).
  std::string refused;
  for (std::size_t i = 0; i < batch.size(); ++i) {
    void* reply = nullptr;
    if (redisGetReply(redis_, &reply) != REDIS_OK) {
      warn(std::string("connection lost: ") + redis_->errstr);
      return false;
    }
    const auto* r = static_cast<const redisReply*>(reply);
    if (r != nullptr && r->type == REDIS_REPLY_ERROR && refused.empty()) {
      refused.assign(r->str, r->len);
    }
    freeReplyObject(reply);
  }
  if (!refused.empty()) {
    warn("PUBLISH refused by the broker: " + refused.substr(0, 200));
    return false;
  }
  return true;
}

bool bus_publisher::send_amqp(const std::vector<bus_publication>& batch) {
  for (const auto& m : batch) {
    const int rc = amqp_basic_publish(
        amqp_->state(), 1, bytes_of(url_.exchange),
        bytes_of(url_.kind == bus_kind::amqp_routed ? m.routing_key : std::string()), 0, 0, nullptr,
        bytes_of(m.json));
    if (rc != AMQP_STATUS_OK) {
      warn(std::string("connection lost: ") + amqp_error_string2(rc));
      return false;
    }
  }
  return true;
}

std::size_t bus_publisher::drop_queued_locked() {
  const auto n = queue_.size();
  dropped_.fetch_add(n, std::memory_order_relaxed);
  done_ += n;
  queue_.clear();
  queued_bytes_ = 0;
  cv_.notify_all();
  return n;
}

void bus_publisher::run() {
  registry::backoff backoff(std::chrono::milliseconds(200), std::chrono::seconds(5));
  std::vector<bus_publication> batch;
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      // Idle: look at the connection every second, so a broker that went away is noticed
      // before the next message is written into a dead socket (and lost).
      while (!cv_.wait_for(lock, std::chrono::seconds(1),
                           [&] { return stopping_ || !queue_.empty(); })) {
        lock.unlock();
        if (connected_.load() && !idle_connection_alive()) {
          warn("connection lost while idle; reconnecting at the next message");
          disconnect();
        }
        lock.lock();
      }
      if (queue_.empty()) {
        break;  // stopping, nothing left
      }
      if (stopping_) {
        // stop()'s flush deadline has passed: what is still queued is dropped, not sent batch
        // by batch to a broker that may take each one's whole reply timeout (a stalled Redis
        // kept stop() waiting for minutes).
        const auto left = drop_queued_locked();
        lock.unlock();
        warn("stopping: " + std::to_string(left) +
             " queued message(s) dropped, not taken by the broker before the flush deadline");
        break;
      }
    }
    if (!connected_.load() && !connect()) {
      std::unique_lock lock(mutex_);
      if (stopping_) {
        // Stopping with no broker: what is queued cannot go anywhere.
        drop_queued_locked();
        break;
      }
      cv_.wait_for(lock, backoff.next(), [&] { return stopping_; });
      continue;
    }
    backoff.reset();
    {
      std::lock_guard lock(mutex_);
      if (stopping_) {
        continue;  // past the flush deadline: the top of the loop drops the queue
      }
      batch.clear();
      while (!queue_.empty() && batch.size() < k_batch) {
        queued_bytes_ -= queue_.front().json.size() + queue_.front().routing_key.size();
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      sending_fd_ = connection_fd();
    }
    const bool ok = url_.kind == bus_kind::redis ? send_redis(batch) : send_amqp(batch);
    {
      std::lock_guard lock(mutex_);
      sending_fd_ = -1;
    }
    if (ok) {
      published_.fetch_add(batch.size(), std::memory_order_relaxed);
    } else {
      // At-most-once: the batch in flight when the broker went away is not sent again.
      dropped_.fetch_add(batch.size(), std::memory_order_relaxed);
      disconnect();
    }
    std::lock_guard lock(mutex_);
    done_ += batch.size();
    cv_.notify_all();
  }
  disconnect();
}

}  // namespace gwx::bus
