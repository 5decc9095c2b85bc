#include "common/bus/amqp_connection.hpp"

#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <sys/time.h>

namespace gwx::bus {
namespace {

amqp_bytes_t bytes_of(const std::string& s) {
  return amqp_bytes_t{s.size(), const_cast<char*>(s.data())};
}

}  // namespace

const char* amqp_exchange_type(bus_kind kind) {
  return kind == bus_kind::amqp_routed ? "direct" : "fanout";
}

std::string amqp_connection::rpc_error(std::string_view what) {
  const auto r = amqp_get_rpc_reply(state_);
  switch (r.reply_type) {
    case AMQP_RESPONSE_NORMAL:
      return {};
    case AMQP_RESPONSE_NONE:
      return std::string(what) + ": no reply";
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
      return std::string(what) + ": " + amqp_error_string2(r.library_error);
    case AMQP_RESPONSE_SERVER_EXCEPTION:
      if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
        const auto* m = static_cast<amqp_connection_close_t*>(r.reply.decoded);
        return std::string(what) + ": the broker closed the connection (" +
               std::to_string(m->reply_code) + " " +
               std::string(static_cast<const char*>(m->reply_text.bytes), m->reply_text.len) + ")";
      }
      if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
        const auto* m = static_cast<amqp_channel_close_t*>(r.reply.decoded);
        return std::string(what) + ": the broker closed the channel (" +
               std::to_string(m->reply_code) + " " +
               std::string(static_cast<const char*>(m->reply_text.bytes), m->reply_text.len) + ")";
      }
      return std::string(what) + ": refused by the broker";
  }
  return std::string(what) + ": failed";
}

std::string amqp_connection::open(const bus_url& url, std::chrono::milliseconds timeout,
                                  int heartbeat_s) {
  close();
  state_ = amqp_new_connection();
  if (state_ == nullptr) {
    return "out of memory";
  }
  auto* socket = amqp_tcp_socket_new(state_);
  if (socket == nullptr) {
    close();
    return "cannot create a socket";
  }
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
  if (const int rc = amqp_socket_open_noblock(socket, url.host.c_str(), url.port, &tv);
      rc != AMQP_STATUS_OK) {
    close();
    return std::string("cannot connect: ") + amqp_error_string2(rc);
  }
  // The login handshake and every RPC (the polite close too) give up after the connect
  // timeout: a stalled broker cannot hold the calling thread for ever.
  amqp_set_handshake_timeout(state_, &tv);
  amqp_set_rpc_timeout(state_, &tv);
  // With heartbeats, a broker that vanished without a FIN is noticed within two intervals.
  const auto login = amqp_login(state_, url.vhost.c_str(), 0, 131072, heartbeat_s,
                                AMQP_SASL_METHOD_PLAIN, url.user.c_str(), url.password.c_str());
  if (login.reply_type != AMQP_RESPONSE_NORMAL) {
    std::string why = login.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION
                          ? amqp_error_string2(login.library_error)
                          : "refused (user, password or vhost)";
    close();
    return "login to vhost '" + url.vhost + "' as '" + url.user + "' failed: " + why;
  }
  amqp_channel_open(state_, 1);
  if (auto e = rpc_error("opening a channel"); !e.empty()) {
    close();
    return e;
  }
  amqp_exchange_declare(state_, 1, bytes_of(url.exchange),
                        amqp_cstring_bytes(amqp_exchange_type(url.kind)), 0, 0, 0, 0,
                        amqp_empty_table);
  if (auto e = rpc_error("declaring " + std::string(amqp_exchange_type(url.kind)) + " exchange '" +
                         url.exchange + "' (non-durable)");
      !e.empty()) {
    close();
    return e;
  }
  return {};
}

void amqp_connection::close() {
  if (state_ == nullptr) {
    return;
  }
  // Polite when possible; a dead connection fails fast here and is destroyed anyway.
  amqp_connection_close(state_, AMQP_REPLY_SUCCESS);
  amqp_destroy_connection(state_);
  state_ = nullptr;
}

}  // namespace gwx::bus
