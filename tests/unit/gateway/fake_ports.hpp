#pragma once

// Socket-free stand-ins for a client connection and a worker link, recording what the
// gateway's per-loop parts do to them.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/link/link_codec.hpp"
#include "gateway/client_directory.hpp"
#include "gateway/event_router.hpp"

namespace gwx::fakes {

/// A client connection: records the bytes it is sent and how it was closed.
class fake_client_port final : public gateway::client_port {
 public:
  gateway::client_state state = gateway::client_state::open;
  /// What send() answers while open (ok, or dropped to act as a slow client).
  gateway::send_status answer = gateway::send_status::ok;
  std::vector<gateway::wire_bytes> sent;
  /// "graceful", "graceful+<final message>", "destroy: <reason>", "reason <code>: <reason>".
  std::vector<std::string> closes;
  /// Reading paused by pause_reading() and not resumed since.
  bool paused = false;
  /// pause_reading() / resume_reading() calls, in order: "pause", "resume".
  std::vector<std::string> reading;
  /// Runs after each send() it took, as a session closed by its send would (may free the
  /// client's record).
  std::function<void()> after_send;

  gateway::client_state current_state() const override { return state; }
  gateway::send_status send(const gateway::wire_bytes& bytes) override {
    if (state != gateway::client_state::open) {
      return gateway::send_status::closed;
    }
    if (answer == gateway::send_status::ok) {
      sent.push_back(bytes);
    }
    const auto out = answer;
    if (after_send) {
      after_send();
    }
    return out;
  }
  void pause_reading() override {
    paused = true;
    reading.emplace_back("pause");
  }
  void resume_reading() override {
    paused = false;
    reading.emplace_back("resume");
  }
  void close_gracefully(std::optional<std::pair<std::string_view, bool>> final_message) override {
    closes.push_back(final_message ? "graceful+" + std::string(final_message->first)
                                   : std::string("graceful"));
    state = gateway::client_state::closing;
  }
  void destroy(gateway::close_cause cause, const std::string& reason) override {
    closes.push_back(std::string("destroy[") + label(cause) + "]: " + reason);
    state = gateway::client_state::closed;
  }
  void close_with_reason(gateway::close_cause cause, std::uint16_t ws_code,
                         const std::string& reason) override {
    closes.push_back(std::string("reason[") + label(cause) + "] " + std::to_string(ws_code) + ": " +
                     reason);
    state = gateway::client_state::closing;
  }

  /// What it was sent, as text.
  std::vector<std::string> texts() const {
    std::vector<std::string> out;
    for (const auto& b : sent) {
      out.push_back(*b);
    }
    return out;
  }
};

/// A worker link: records the events and ClientInfo frames it is handed.
class fake_worker_port final : public gateway::worker_port {
 public:
  explicit fake_worker_port(std::uint64_t id, bool draining = false)
      : id_(id), draining_(draining) {}

  std::uint64_t id() const override { return id_; }
  bool draining() const override { return draining_; }
  void send_event(const gateway::event_ptr& event) override {
    events.push_back(event);
    log.push_back("event " + std::to_string(gateway::event_id_of(event)));
  }
  void send_client_info(const gateway::event_ptr& info) override {
    link::v2::Frame f;
    link_codec::decode(info->wire, link_codec::limits{}, f);
    infos.push_back(f.client());
    log.push_back("info " + f.client().client_id());
  }
  bool backpressured() const override { return congested; }

  /// Ids of the events received, in order.
  std::vector<std::uint64_t> ids() const {
    std::vector<std::uint64_t> out;
    for (const auto& e : events) {
      out.push_back(gateway::event_id_of(e));
    }
    return out;
  }

  std::vector<gateway::event_ptr> events;
  /// The ClientInfo frames received, decoded.
  std::vector<link::v2::ClientInfo> infos;
  /// Both in the order received: "event <id>", "info <client_id>".
  std::vector<std::string> log;
  /// What backpressured() answers.
  bool congested = false;

 private:
  std::uint64_t id_;
  bool draining_;
};

}  // namespace gwx::fakes
