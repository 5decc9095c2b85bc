#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <spdlog/spdlog.h>

#include <asio.hpp>

#include "common/bus/redis_asio.hpp"
#include "common/registry/backoff.hpp"
#include "gateway/bus_backends.hpp"

namespace gwx::gateway {
namespace {

/// SUBSCRIBE to one channel; every "message" push is a bus message. Everything below runs on
/// the bus thread (io_), hiredis included.
class redis_subscriber final : public bus_subscriber {
 public:
  redis_subscriber(bus_config config, dispatch_fn dispatch)
      : bus_subscriber(std::move(config), std::move(dispatch)),
        retry_(io_),
        backoff_(config_.reconnect_min, config_.reconnect_max) {}

  ~redis_subscriber() override { stop(); }

 private:
  void run() override {
    connect();
    io_.run();
  }

  void wake() override {
    asio::post(io_, [this] {
      if (!stopping()) {
        return;
      }
      retry_.cancel();
      if (ac_ != nullptr) {
        auto* ac = ac_;
        ac_ = nullptr;
        redisAsyncFree(ac);
      }
    });
  }

  void connect() {
    if (stopping()) {
      return;
    }
    ac_ = redisAsyncConnect(config_.url.host.c_str(), config_.url.port);
    if (ac_ == nullptr || ac_->err != 0) {
      warn(std::string("cannot connect: ") + (ac_ != nullptr ? ac_->errstr : "out of memory"));
      if (ac_ != nullptr) {
        redisAsyncFree(ac_);
        ac_ = nullptr;
      }
      retry();
      return;
    }
    ac_->data = this;
    bus::attach_redis_to_asio(io_, ac_, [this](redisAsyncContext* ac) { check_pending(ac); });
    redisAsyncSetConnectCallback(ac_, [](const redisAsyncContext* ac, int status) {
      static_cast<redis_subscriber*>(ac->data)->on_connect(ac, status);
    });
    redisAsyncSetDisconnectCallback(ac_, [](const redisAsyncContext* ac, int status) {
      static_cast<redis_subscriber*>(ac->data)->on_disconnect(ac, status);
    });
    const auto& u = config_.url;
    if (!u.password.empty()) {
      if (u.user.empty()) {
        redisAsyncCommand(ac_, &redis_subscriber::on_auth, this, "AUTH %b", u.password.data(),
                          u.password.size());
      } else {
        redisAsyncCommand(ac_, &redis_subscriber::on_auth, this, "AUTH %b %b", u.user.data(),
                          u.user.size(), u.password.data(), u.password.size());
      }
    }
    redisAsyncCommand(ac_, &redis_subscriber::on_push, this, "SUBSCRIBE %b", u.channel.data(),
                      u.channel.size());
  }

  void on_connect(const redisAsyncContext* ac, int status) {
    if (status != REDIS_OK) {
      // hiredis frees the context after this callback.
      warn(std::string("cannot connect: ") + ac->errstr);
      ac_ = nullptr;
      skipping_ = false;  // a real outage now: its end is logged
      retry();
      return;
    }
    redisEnableKeepAlive(const_cast<redisContext*>(&ac->c));
  }

  void on_disconnect(const redisAsyncContext* ac, int status) {
    if (status != REDIS_OK && ac->errstr[0] != '\0') {
      warn(std::string("connection lost: ") + ac->errstr);
    }
    ac_ = nullptr;
    set_connected(false, skipping_);
    if (skipping_) {
      // Our own cut, to skip a message: subscribed again at once, so that as little as
      // possible published meanwhile is missed (pub/sub keeps nothing for the absent).
      retry(std::chrono::milliseconds(0));
    } else {
      retry(backoff_.next());
    }
  }

  static void on_auth(redisAsyncContext* ac, void* reply, void* self) {
    const auto* r = static_cast<redisReply*>(reply);
    if (r != nullptr && r->type == REDIS_REPLY_ERROR) {
      // Redis's own words, never the password.
      static_cast<redis_subscriber*>(self)->warn("authentication failed: " +
                                                 std::string(r->str, r->len));
      redisAsyncDisconnect(ac);
    }
  }

  static void on_push(redisAsyncContext* ac, void* reply, void* self_ptr) {
    auto* self = static_cast<redis_subscriber*>(self_ptr);
    const auto* r = static_cast<redisReply*>(reply);
    if (r == nullptr) {
      return;  // the context is going away
    }
    if (r->type == REDIS_REPLY_ERROR) {
      self->warn("SUBSCRIBE refused: " + std::string(r->str, r->len));
      redisAsyncDisconnect(ac);
      return;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 3 ||
        r->element[0]->type != REDIS_REPLY_STRING) {
      return;
    }
    const std::string_view kind(r->element[0]->str, r->element[0]->len);
    if (kind == "subscribe") {
      self->backoff_.reset();
      self->set_connected(true, self->skipping_);
      self->skipping_ = false;
    } else if (kind == "message" && r->element[2]->type == REDIS_REPLY_STRING) {
      self->on_message(std::string_view(r->element[2]->str, r->element[2]->len));
    }
  }

  /// hiredis keeps an unfinished reply whole in its buffer: past the limit, the message is
  /// refused by dropping the connection (and subscribing again) instead of reading it all.
  void check_pending(redisAsyncContext* ac) {
    const auto* reader = ac->c.reader;
    if (reader == nullptr || reader->len - reader->pos <= config_.max_message + 4096) {
      return;
    }
    // Disconnected first, so whoever sees the rejection counted also sees the bus down.
    skipping_ = true;
    redisAsyncDisconnect(ac);
    reject(bus::bus_error::too_large, "a message over " + std::to_string(config_.max_message) +
                                          " bytes is arriving: reconnected to skip it");
  }

  void retry() { retry(backoff_.next()); }

  void retry(std::chrono::milliseconds delay) {
    if (stopping()) {
      return;
    }
    retry_.expires_after(delay);
    retry_.async_wait([this](std::error_code ec) {
      if (!ec) {
        connect();
      }
    });
  }

  asio::io_context io_;
  asio::steady_timer retry_;
  registry::backoff backoff_;
  redisAsyncContext* ac_ = nullptr;
  /// Set while reconnecting to skip a message over the size limit (check_pending()).
  bool skipping_ = false;
};

}  // namespace

std::unique_ptr<bus_subscriber> make_redis_subscriber(bus_config config,
                                                      bus_subscriber::dispatch_fn dispatch) {
  return std::make_unique<redis_subscriber>(std::move(config), std::move(dispatch));
}

}  // namespace gwx::gateway
