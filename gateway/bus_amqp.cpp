#include <amqp.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <condition_variable>
#include <set>
#include <vector>

#include "common/bus/amqp_connection.hpp"
#include "common/bus/bus_message.hpp"
#include "common/registry/backoff.hpp"
#include "gateway/bus_backends.hpp"

namespace gwx::gateway {
namespace {

constexpr auto k_connect_timeout = std::chrono::seconds(5);
/// How long one wait for a frame lasts: the latency of a binding change or of stop().
constexpr long k_poll_us = 50'000;
/// AMQP short strings (routing keys) hold at most 255 bytes.
/// Binding changes sent before the broker's answers are read again.
constexpr std::size_t k_binding_batch = 256;

amqp_bytes_t bytes_of(const std::string& s) {
  return amqp_bytes_t{s.size(), const_cast<char*>(s.data())};
}

/// rabbitmq-c's blocking API on the bus thread: connect, declare the exchange and this
/// gateway's own exclusive, auto-delete, non-durable queue, bind it (fanout: once; routed:
/// `all`, the client key and every held uid/group key), consume without acks (at-most-once),
/// and read frames with a short timeout so binding changes and stop() are seen promptly.
class amqp_subscriber final : public bus_subscriber {
 public:
  amqp_subscriber(bus_config config, dispatch_fn dispatch)
      : bus_subscriber(std::move(config), std::move(dispatch)),
        backoff_(config_.reconnect_min, config_.reconnect_max),
        queue_("gwx.gateway." + config_.gateway_id) {}

  ~amqp_subscriber() override { stop(); }

 private:
  void run() override {
    while (!stopping()) {
      if (const auto error = subscribe(); !error.empty()) {
        conn_.close();
        set_connected(false);
        if (!stopping()) {
          warn(error);
        }
        pause(backoff_.next());
        continue;
      }
      backoff_.reset();
      set_connected(true);
      const auto error = consume();
      conn_.close();
      bound_.clear();
      backlog_.clear();  // the new subscription binds what is wanted then
      backlog_next_ = 0;
      counters_.bindings.store(0);
      set_connected(false);
      if (!error.empty() && !stopping()) {
        warn(error);
        pause(backoff_.next());
      }
    }
  }

  void wake() override {
    std::lock_guard lock(pause_mutex_);
    pause_cv_.notify_all();
  }

  /// Waits `d` or until stop().
  void pause(std::chrono::milliseconds d) {
    std::unique_lock lock(pause_mutex_);
    pause_cv_.wait_for(lock, d, [this] { return stopping(); });
  }

  std::string subscribe() {
    if (auto e = conn_.open(config_.url, k_connect_timeout); !e.empty()) {
      return e;
    }
    auto* st = conn_.state();
    // The broker keeps at most this many bytes for this gateway, dropping the oldest: a
    // gateway that falls behind costs the broker bounded memory.
    amqp_table_entry_t limit;
    limit.key = amqp_cstring_bytes("x-max-length-bytes");
    limit.value.kind = AMQP_FIELD_KIND_I64;
    limit.value.value.i64 = static_cast<int64_t>(config_.broker_queue_max_bytes);
    amqp_table_t args{1, &limit};
    amqp_queue_declare(st, 1, bytes_of(queue_), 0, 0, 1, 1, args);
    if (auto e = conn_.rpc_error("declaring queue " + queue_); !e.empty()) {
      return e;
    }
    if (routed()) {
      for (const auto& key : desired_keys()) {
        if (auto e = bind(key); !e.empty()) {
          return e;
        }
      }
    } else if (auto e = bind(""); !e.empty()) {
      return e;
    }
    amqp_basic_consume(st, 1, bytes_of(queue_), amqp_empty_bytes, 0, 1, 1, amqp_empty_table);
    return conn_.rpc_error("consuming from " + queue_);
  }

  // Bindings are sent without waiting for the broker's answer (queue.bind with no-wait; the
  // unbind-ok of queue.unbind, which has no no-wait, is skipped by consume()). A synchronous
  // call would make rabbitmq-c queue every delivery that arrives meanwhile and walk that queue
  // on every later frame: binding 10,000 uids under load took 90 s that way. A binding the
  // broker refuses closes the channel, which consume() sees: the gateway then reconnects and
  // binds everything again.
  std::string bind(const std::string& key) {
    if (key.size() > bus::k_max_routing_key) {
      warn("routing key of " + std::to_string(key.size()) +
           " bytes not bound (AMQP allows 255): publish to 'all' for it");
      return {};
    }
    amqp_queue_bind_t m{};
    m.queue = bytes_of(queue_);
    m.exchange = bytes_of(config_.url.exchange);
    m.routing_key = bytes_of(key);
    m.nowait = 1;
    m.arguments = amqp_empty_table;
    if (const int rc = amqp_send_method(conn_.state(), 1, AMQP_QUEUE_BIND_METHOD, &m);
        rc != AMQP_STATUS_OK) {
      return "binding " + queue_ + ": " + amqp_error_string2(rc);
    }
    bound_.insert(key);
    counters_.bindings.store(bound_.size());
    return {};
  }

  std::string unbind(const std::string& key) {
    if (bound_.count(key) == 0) {
      return {};
    }
    amqp_queue_unbind_t m{};
    m.queue = bytes_of(queue_);
    m.exchange = bytes_of(config_.url.exchange);
    m.routing_key = bytes_of(key);
    m.arguments = amqp_empty_table;
    if (const int rc = amqp_send_method(conn_.state(), 1, AMQP_QUEUE_UNBIND_METHOD, &m);
        rc != AMQP_STATUS_OK) {
      return "unbinding " + queue_ + ": " + amqp_error_string2(rc);
    }
    bound_.erase(key);
    counters_.bindings.store(bound_.size());
    return {};
  }

  /// Sends at most k_binding_batch binding changes: between batches consume() reads what the
  /// broker sent (unbind-oks, deliveries), so neither side blocks writing to the other.
  std::string apply_binding_changes() {
    if (backlog_next_ == backlog_.size()) {
      backlog_ = take_binding_changes();
      backlog_next_ = 0;
    }
    const auto end = std::min(backlog_.size(), backlog_next_ + k_binding_batch);
    for (; backlog_next_ < end; ++backlog_next_) {
      const auto& change = backlog_[backlog_next_];
      auto e = change.bind ? (bound_.count(change.key) != 0 ? std::string() : bind(change.key))
                           : unbind(change.key);
      if (!e.empty()) {
        return e;
      }
    }
    return {};
  }

  /// "<code> <text>" of a broker's close method, the text cut to a log line's worth.
  static std::string close_reason(std::uint16_t code, amqp_bytes_t text) {
    return std::to_string(code) + " " +
           std::string(static_cast<const char*>(text.bytes), std::min<std::size_t>(text.len, 200));
  }

  /// Reads deliveries until the connection fails or stop(); returns why it ended.
  std::string consume() {
    auto* st = conn_.state();
    // A delivery is a method frame, a header frame with the body size, then body frames.
    enum class expect { method, header, body } next = expect::method;
    std::uint64_t body_left = 0;
    bool skipping = false;
    std::string body;
    while (!stopping()) {
      if (routed()) {
        if (auto e = apply_binding_changes(); !e.empty()) {
          return e;
        }
      }
      if (next == expect::method) {
        amqp_maybe_release_buffers(st);  // no frame is held between deliveries
      }
      amqp_frame_t frame;
      // More binding changes waiting: only look for what has already arrived.
      timeval tv{0, backlog_next_ < backlog_.size() ? 0 : k_poll_us};
      const int rc = amqp_simple_wait_frame_noblock(st, &frame, &tv);
      if (rc == AMQP_STATUS_TIMEOUT) {
        continue;
      }
      if (rc != AMQP_STATUS_OK) {
        return std::string("connection lost: ") + amqp_error_string2(rc);
      }
      if (frame.channel == 0) {
        // The broker closing the whole connection (an operator, a node shutting down, memory
        // alarm policies): answered at once and reconnected, rather than noticed only when
        // the socket goes away seconds later.
        if (frame.frame_type == AMQP_FRAME_METHOD &&
            frame.payload.method.id == AMQP_CONNECTION_CLOSE_METHOD) {
          const auto* close =
              static_cast<const amqp_connection_close_t*>(frame.payload.method.decoded);
          amqp_connection_close_ok_t ok{};
          amqp_send_method(st, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
          return "the broker closed the connection: " +
                 close_reason(close->reply_code, close->reply_text);
        }
        continue;
      }
      if (frame.channel != 1) {
        continue;
      }
      switch (frame.frame_type) {
        case AMQP_FRAME_METHOD:
          if (frame.payload.method.id == AMQP_BASIC_DELIVER_METHOD) {
            next = expect::header;
          } else if (frame.payload.method.id == AMQP_CHANNEL_CLOSE_METHOD) {
            const auto* close =
                static_cast<const amqp_channel_close_t*>(frame.payload.method.decoded);
            return "the broker closed the subscription: " +
                   close_reason(close->reply_code, close->reply_text);
          }
          break;
        case AMQP_FRAME_HEADER: {
          if (next != expect::header) {
            break;
          }
          body_left = frame.payload.properties.body_size;
          body.clear();
          // Refused from its header: a large body is skipped frame by frame, never held.
          skipping = body_left > config_.max_message;
          if (skipping) {
            reject(bus::bus_error::too_large, std::to_string(body_left) +
                                                  " bytes, over the limit of " +
                                                  std::to_string(config_.max_message));
          } else {
            body.reserve(body_left);
          }
          next = expect::body;
          if (body_left == 0) {
            on_message(body);
            next = expect::method;
          }
          break;
        }
        case AMQP_FRAME_BODY: {
          if (next != expect::body) {
            break;
          }
          const auto& part = frame.payload.body_fragment;
          if (!skipping) {
            body.append(static_cast<const char*>(part.bytes), part.len);
          }
          body_left -= std::min<std::uint64_t>(body_left, part.len);
          // The frame is copied or skipped: its memory goes back now, so a message of any
          // size costs one frame here, not its whole size until its last frame.
          amqp_maybe_release_buffers_on_channel(st, 1);
          if (body_left == 0) {
            if (!skipping) {
              on_message(body);
            }
            next = expect::method;
            if (body.capacity() > (64U << 10)) {
              std::string().swap(body);  // a large message's buffer is not kept
            }
          }
          break;
        }
        default:
          break;
      }
    }
    return {};
  }

  registry::backoff backoff_;
  std::string queue_;
  bus::amqp_connection conn_;
  /// Keys bound to the queue at the broker (bus thread only).
  std::set<std::string> bound_;
  /// Binding changes taken from the subscriber and not sent yet, from backlog_next_ on.
  std::vector<binding_change> backlog_;
  std::size_t backlog_next_ = 0;
  std::mutex pause_mutex_;
  std::condition_variable pause_cv_;
};

}  // namespace

std::unique_ptr<bus_subscriber> make_amqp_subscriber(bus_config config,
                                                     bus_subscriber::dispatch_fn dispatch) {
  return std::make_unique<amqp_subscriber>(std::move(config), std::move(dispatch));
}

}  // namespace gwx::gateway
