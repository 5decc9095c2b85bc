#pragma once

#include <grpcpp/client_context.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/registry/gateway_watcher.hpp"
#include "common/registry/lease_keeper.hpp"
#include "gwx/registry/v1/registry.grpc.pb.h"
#include "register/register_server.hpp"

namespace gwx::registry::test {

using namespace std::chrono_literals;

/// Polls `condition` until it holds or `timeout` passes; the way tests wait, never a bare sleep.
template <typename F>
bool eventually(F&& condition, std::chrono::milliseconds timeout = 5s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) {
      return false;
    }
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

/// An in-process register on 127.0.0.1 (port 0: any free one).
inline std::unique_ptr<register_server> start_register(register_config config = {},
                                                       std::uint16_t port = 0) {
  return std::make_unique<register_server>(host_port{"127.0.0.1", port}, std::move(config));
}

/// A port nothing listens on (bound once by a register, then released).
inline std::uint16_t dead_port() {
  auto server = start_register();
  const auto port = server->port();
  server->shutdown(0ms);
  return port;
}

inline host_port local(std::uint16_t port) {
  return host_port{"127.0.0.1", port};
}

/// A raw client of one register, as a gateway or watcher would be.
inline std::unique_ptr<v1::RegisterService::Stub> make_stub(std::uint16_t port) {
  return v1::RegisterService::NewStub(
      grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials()));
}

/// A client context with a proof of `token` for one call of `method` (none when the token is
/// empty) and a deadline.
inline std::unique_ptr<grpc::ClientContext> make_context(const std::string& token = {},
                                                         const std::string& method = "List",
                                                         std::chrono::milliseconds deadline = 10s) {
  auto context = std::make_unique<grpc::ClientContext>();
  if (!token.empty()) {
    context->AddMetadata(k_auth_metadata, make_auth_proof(token, method));
  }
  context->set_deadline(std::chrono::system_clock::now() + deadline);
  return context;
}

/// A raw Watch stream whose first event (the snapshot) has been read.
struct watch_stream {
  std::unique_ptr<grpc::ClientContext> context;
  std::unique_ptr<grpc::ClientReader<v1::WatchEvent>> reader;
  v1::Snapshot snapshot;
  bool ok = false;
};

inline watch_stream open_watch(v1::RegisterService::Stub& stub, const std::string& token = {},
                               const std::string& name = {}) {
  watch_stream out;
  out.context = make_context(token, "Watch");
  v1::WatchRequest request;
  request.set_watcher_name(name);
  out.reader = stub.Watch(out.context.get(), request);
  v1::WatchEvent event;
  out.ok = out.reader->Read(&event) && event.has_snapshot();
  out.snapshot = event.snapshot();
  return out;
}

inline v1::GatewayInfo make_info(const std::string& id,
                                 const std::string& address = "127.0.0.1:9100") {
  v1::GatewayInfo info;
  info.set_gateway_id(id);
  info.set_internal_address(address);
  info.add_listeners("ws://127.0.0.1:8080/");
  info.set_name("test-" + id);
  return info;
}

inline grpc::Status heartbeat(v1::RegisterService::Stub& stub, const v1::GatewayInfo& info,
                              std::uint32_t ttl_ms = 1000, v1::HeartbeatResponse* out = nullptr,
                              const std::string& token = {}, const std::string& lease_key = {}) {
  v1::HeartbeatRequest request;
  *request.mutable_gateway() = info;
  request.set_ttl_ms(ttl_ms);
  request.set_lease_key(lease_key);
  v1::HeartbeatResponse response;
  auto context = make_context(token, "Heartbeat");
  auto status = stub.Heartbeat(context.get(), request, &response);
  if (out != nullptr) {
    *out = response;
  }
  return status;
}

inline grpc::Status withdraw(v1::RegisterService::Stub& stub, const std::string& id,
                             const std::string& token = {}, const std::string& lease_key = {}) {
  v1::WithdrawRequest request;
  request.set_gateway_id(id);
  request.set_lease_key(lease_key);
  v1::WithdrawResponse response;
  auto context = make_context(token, "Withdraw");
  return stub.Withdraw(context.get(), request, &response);
}

/// gateway_ids listed by a register, in its order.
inline std::vector<std::string> list_ids(v1::RegisterService::Stub& stub,
                                         const std::string& token = {}) {
  v1::ListResponse response;
  auto context = make_context(token);
  if (!stub.List(context.get(), v1::ListRequest{}, &response).ok()) {
    return {"<list failed>"};
  }
  std::vector<std::string> ids;
  for (const auto& info : response.gateways()) {
    ids.push_back(info.gateway_id());
  }
  return ids;
}

inline std::vector<std::string> ids_of(const std::vector<gateway_entry>& entries) {
  std::vector<std::string> ids;
  for (const auto& entry : entries) {
    ids.push_back(entry.gateway_id);
  }
  return ids;
}

/// Every set a gateway_watcher reported, in order.
class change_recorder {
 public:
  gateway_watcher::change_handler handler() {
    return [this](const std::vector<gateway_entry>& set) {
      std::lock_guard lock(mutex_);
      history_.push_back(ids_of(set));
    };
  }
  std::vector<std::vector<std::string>> history() const {
    std::lock_guard lock(mutex_);
    return history_;
  }
  /// The set last reported. The watcher updates current() just before it calls the handler, so
  /// a test that then reads history() waits on this, not on current().
  std::vector<std::string> last() const {
    std::lock_guard lock(mutex_);
    return history_.empty() ? std::vector<std::string>{} : history_.back();
  }

 private:
  mutable std::mutex mutex_;
  std::vector<std::vector<std::string>> history_;
};

/// Routes spdlog's default logger into memory for the lifetime of the object, so a test can
/// wait for what an operator would read (a register going down) and check what is never logged.
class log_capture {
 public:
  log_capture() : sink_(std::make_shared<sink>()), previous_(spdlog::default_logger()) {
    auto logger = std::make_shared<spdlog::logger>("test", sink_);
    logger->set_level(spdlog::level::trace);
    spdlog::set_default_logger(std::move(logger));
  }
  ~log_capture() { spdlog::set_default_logger(previous_); }
  log_capture(const log_capture&) = delete;
  log_capture& operator=(const log_capture&) = delete;

  /// Lines containing all of `parts`.
  std::size_t count(const std::vector<std::string>& parts) const {
    std::size_t n = 0;
    for (const auto& line : sink_->lines()) {
      bool all = true;
      for (const auto& part : parts) {
        all = all && line.find(part) != std::string::npos;
      }
      n += all ? 1 : 0;
    }
    return n;
  }

  /// Everything logged so far, one line per message.
  std::string text() const {
    std::string out;
    for (const auto& line : sink_->lines()) {
      out += line + "\n";
    }
    return out;
  }

 private:
  class sink : public spdlog::sinks::base_sink<std::mutex> {
   public:
    std::vector<std::string> lines() {
      std::lock_guard lock(mutex_);
      return lines_;
    }

   protected:
    void sink_it_(const spdlog::details::log_msg& msg) override {
      lines_.emplace_back(msg.payload.data(), msg.payload.size());
    }
    void flush_() override {}

   private:
    std::vector<std::string> lines_;
  };

  std::shared_ptr<sink> sink_;
  std::shared_ptr<spdlog::logger> previous_;
};

}  // namespace gwx::registry::test
