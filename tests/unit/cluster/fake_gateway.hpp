#pragma once

// A gateway's side of the link protocol on 127.0.0.1:0, on its own thread: sends the
// Challenge, checks the peer's proof, answers Welcome (or Reject, or a forged Welcome), then
// records every frame the peer sends and answers queries with whatever the test scripted.
// It speaks the drain protocol when told to (Drain to the peer, DrainAck on request or at
// once), answers DrainWorker for the worker names it is given, and can freeze like a stopped
// process. Observations are read and awaited under a lock, never by sleeping.

#include <asio.hpp>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/client_id.hpp"
#include "common/link/link_codec.hpp"
#include "common/link/link_handshake.hpp"
#include "common/net/link_stream.hpp"
#include "common/registry/gateway_watcher.hpp"

namespace gwx::fakes {

/// A MESSAGE event of `client` (with its info, as a gateway sends it when the info changed).
inline link::v2::ClientEvent message_event(std::uint64_t id, const std::string& client,
                                           const std::string& text,
                                           const std::string& gateway_address,
                                           std::uint64_t session_seq = 0) {
  link::v2::ClientEvent ev;
  ev.set_event_id(id);
  ev.set_kind(link::v2::EVENT_KIND_MESSAGE);
  ev.set_payload(text);
  ev.mutable_client()->set_client_id(client);
  ev.mutable_client()->set_gateway_address(gateway_address);
  ev.mutable_client()->set_session_seq(session_seq);
  return ev;
}

class fake_gateway {
 public:
  enum class behaviour {
    normal,
    /// Answers every Hello with Reject.
    reject,
    /// Answers with a Welcome whose proof is wrong.
    forge_welcome,
  };

  /// Answers a query, or nullopt to stay silent.
  using answer_fn = std::function<std::optional<link::v2::QueryResult>(const link::v2::Query&)>;

  explicit fake_gateway(std::string secret, std::uint64_t epoch = new_epoch(),
                        behaviour how = behaviour::normal)
      : secret_(std::move(secret)),
        epoch_(epoch),
        how_(how),
        acceptor_(io_, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    port_ = acceptor_.local_endpoint().port();
    accept();
    thread_ = std::thread([this] { io_.run(); });
  }

  ~fake_gateway() { stop(); }

  /// Closes everything and joins the thread.
  void stop() {
    if (!thread_.joinable()) {
      return;
    }
    thaw();
    asio::post(io_, [this] {
      std::error_code ignored;
      acceptor_.close(ignored);
      close_all("fake gateway stopping");
    });
    work_.reset();
    thread_.join();
  }

  /// Drops every peer link at once (as a crash would); the acceptor stays open.
  void drop_links() {
    asio::post(io_, [this] { close_all("dropped by test"); });
  }

  std::string gateway_id() const { return epoch_to_hex(epoch_); }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  std::uint16_t port() const { return port_; }

  /// The registry entry naming this gateway.
  registry::gateway_entry entry() const {
    return registry::gateway_entry{gateway_id(), address(), {"ws://127.0.0.1:1/"}, "fake"};
  }

  /// A client_id this gateway could have issued (or, with another epoch, a stale one).
  std::string client_id(std::uint64_t connection, std::optional<std::uint64_t> epoch = {}) const {
    return make_client_id("127.0.0.1", port_, epoch.value_or(epoch_), connection);
  }

  /// What the Welcome of links made from now on says of redelivery (default: false, which
  /// is what this fake does: it never redelivers).
  void set_redelivers(bool redelivers) { redelivers_ = redelivers; }

  void set_answer(answer_fn fn) {
    std::lock_guard lock(mutex_);
    answer_ = std::move(fn);
  }

  /// Sends a client event to the most recent authenticated peer.
  void send_event(link::v2::ClientEvent event) {
    link::v2::Frame f;
    *f.mutable_event() = std::move(event);
    send_frame(std::move(f));
  }

  /// Sends client events to the most recent authenticated peer in one go: all are queued
  /// before anything the peer sends meanwhile is read (or answered).
  void send_events(std::vector<link::v2::ClientEvent> events) {
    asio::post(io_, [this, events = std::move(events)]() mutable {
      if (auto it = streams_.find(last_authenticated_); it != streams_.end()) {
        link::v2::Frame f;
        for (auto& e : events) {
          *f.mutable_event() = std::move(e);
          const std::string payload = link_codec::detach_payload(f);
          it->second->send(f, payload);
        }
      }
    });
  }

  /// Bytes queued towards the most recent authenticated peer and not written yet (what it
  /// did not read, beyond what the sockets hold).
  std::size_t queued_bytes() {
    std::promise<std::size_t> bytes;
    auto f = bytes.get_future();
    asio::post(io_, [this, &bytes] {
      const auto it = streams_.find(last_authenticated_);
      bytes.set_value(it != streams_.end() ? it->second->queued_bytes() : 0);
    });
    return f.get();
  }

  /// Sends a client's ClientInfo frame to the most recent authenticated peer.
  void send_client_info(link::v2::ClientInfo info) {
    link::v2::Frame f;
    *f.mutable_client() = std::move(info);
    send_frame(std::move(f));
  }

  /// Asks the most recent authenticated peer to drain (what gwxctl drain makes a gateway do).
  void send_drain(const std::string& reason) {
    link::v2::Frame f;
    f.mutable_drain()->set_reason(reason);
    send_frame(std::move(f));
  }

  /// Tells the most recent authenticated peer that no further event will come.
  void send_drain_ack() {
    link::v2::Frame f;
    f.mutable_drain_ack();
    send_frame(std::move(f));
  }

  /// Answers every Drain from now on with DrainAck at once.
  void set_auto_drain_ack(bool on) {
    std::lock_guard lock(mutex_);
    auto_drain_ack_ = on;
  }

  /// The worker names DrainWorker finds here (others are answered with an error).
  void set_worker_names(std::set<std::string> names) {
    std::lock_guard lock(mutex_);
    worker_names_ = std::move(names);
  }

  /// Blocks the gateway's thread, as SIGSTOP would: nothing is read, answered or pinged.
  void freeze() {
    {
      std::lock_guard lock(freeze_mutex_);
      frozen_ = true;
    }
    asio::post(io_, [this] {
      std::unique_lock lock(freeze_mutex_);
      thawed_.wait(lock, [this] { return !frozen_; });
    });
  }

  /// Lets a frozen gateway run again.
  void thaw() {
    std::lock_guard lock(freeze_mutex_);
    frozen_ = false;
    thawed_.notify_all();
  }

  /// Waits until `pred` holds over the recorded state (checked under the lock).
  template <typename Pred>
  bool wait(Pred pred, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] { return pred(*this); });
  }

  // ---- recorded state: read inside wait() or via the locked getters below ----
  int hellos = 0;
  int authenticated = 0;
  int closed = 0;
  std::vector<link::v2::Hello> hello_frames;
  std::vector<link::v2::Command> commands;
  std::vector<link::v2::EventAck> acks;
  std::vector<link::v2::ConnectDecision> decisions;
  /// Reasons of the Drain frames received.
  std::vector<std::string> drains;
  /// What arrived, in order: "send <text>" (send_to_clients / send_to_all), "command", "query",
  /// "ack <id>", "drain", then "closed" when a link ended.
  std::vector<std::string> timeline;
  std::vector<std::uint64_t> acked_ids() const {
    std::vector<std::uint64_t> out;
    for (const auto& a : acks) {
      out.insert(out.end(), a.event_ids().begin(), a.event_ids().end());
    }
    return out;
  }

  /// A copy of the commands received so far.
  std::vector<link::v2::Command> commands_copy() {
    std::lock_guard lock(mutex_);
    return commands;
  }

 private:
  void send_frame(link::v2::Frame f) {
    asio::post(io_, [this, f = std::move(f)]() mutable {
      if (auto it = streams_.find(last_authenticated_); it != streams_.end()) {
        const std::string payload = link_codec::detach_payload(f);
        it->second->send(f, payload);
      }
    });
  }

  static std::string describe(const link::v2::Command& cmd) {
    if (cmd.has_send_to_clients()) {
      return "send " + cmd.send_to_clients().message().data();
    }
    if (cmd.has_send_to_all()) {
      return "send " + cmd.send_to_all().message().data();
    }
    return cmd.has_query() ? "query" : "command";
  }

  void close_all(const std::string& reason) {
    auto all = streams_;  // closing erases from streams_
    for (auto& [n, s] : all) {
      s->close(reason);
    }
  }

  void accept() {
    acceptor_.async_accept([this](std::error_code ec, asio::ip::tcp::socket socket) {
      if (ec) {
        return;
      }
      const auto n = ++next_stream_;
      auto stream = std::make_shared<link_stream>(std::move(socket));
      streams_[n] = stream;
      auto& handshake =
          handshakes_.try_emplace(n, secret_, gateway_id(), address(), redelivers_.load())
              .first->second;
      stream->start(
          [this, n](link::v2::Frame& f, std::string_view payload) {
            link_codec::attach_payload(f, payload);
            on_frame(n, f);
          },
          [this, n](const std::string&) {
            streams_.erase(n);
            handshakes_.erase(n);
            record([](fake_gateway& g) {
              ++g.closed;
              g.timeline.emplace_back("closed");
            });
          });
      stream->send(handshake.challenge());
      accept();
    });
  }

  void on_frame(std::uint64_t n, link::v2::Frame& f) {
    auto it = streams_.find(n);
    if (it == streams_.end()) {
      return;
    }
    auto& stream = *it->second;
    if (f.has_hello()) {
      const auto& h = f.hello();
      record([&h](fake_gateway& g) {
        ++g.hellos;
        g.hello_frames.push_back(h);
      });
      auto step = handshakes_.at(n).on_frame(f);
      const bool proof_ok = step.result == link_handshake::step::outcome::up;
      if (!proof_ok || how_ == behaviour::reject) {
        link::v2::Frame out;
        out.mutable_reject()->set_reason(proof_ok ? "go away" : "bad proof");
        stream.send(out);
        stream.close("rejected");
        return;
      }
      if (how_ == behaviour::forge_welcome) {
        step.reply->mutable_welcome()->set_proof(std::string(32, 'x'));
      }
      stream.send(*step.reply);
      stream.authenticated();
      last_authenticated_ = n;
      record([](fake_gateway& g) { ++g.authenticated; });
      return;
    }
    if (f.has_command() && f.command().has_drain_worker()) {
      const auto& cmd = f.command();
      bool found = false;
      {
        std::lock_guard lock(mutex_);
        found = worker_names_.count(cmd.drain_worker().worker_name()) != 0;
      }
      link::v2::Frame reply;
      reply.mutable_reply()->set_request_id(cmd.request_id());
      if (!found) {
        reply.mutable_reply()->set_error("no worker named '" + cmd.drain_worker().worker_name() +
                                         "' is linked to this gateway");
      }
      stream.send(reply);
      record([&cmd](fake_gateway& g) { g.commands.push_back(cmd); });
      return;
    }
    if (f.has_command()) {
      const auto cmd = f.command();
      std::optional<link::v2::QueryResult> result;
      if (cmd.has_query()) {
        answer_fn fn;
        {
          std::lock_guard lock(mutex_);
          fn = answer_;
        }
        if (fn) {
          result = fn(cmd.query());
        }
        if (result && cmd.request_id() != 0) {
          link::v2::Frame reply;
          reply.mutable_reply()->set_request_id(cmd.request_id());
          *reply.mutable_reply()->mutable_result() = *result;
          stream.send(reply);
        }
      }
      record([&cmd](fake_gateway& g) {
        g.commands.push_back(cmd);
        g.timeline.push_back(describe(cmd));
      });
      return;
    }
    if (f.has_ack()) {
      record([&f](fake_gateway& g) {
        g.acks.push_back(f.ack());
        for (const auto id : f.ack().event_ids()) {
          g.timeline.push_back("ack " + std::to_string(id));
        }
      });
      return;
    }
    if (f.has_drain()) {
      bool ack_now = false;
      record([&f, &ack_now](fake_gateway& g) {
        g.drains.push_back(f.drain().reason());
        g.timeline.emplace_back("drain");
        ack_now = g.auto_drain_ack_;
      });
      if (ack_now) {
        link::v2::Frame ack;
        ack.mutable_drain_ack();
        stream.send(ack);
      }
      return;
    }
    if (f.has_decision()) {
      record([&f](fake_gateway& g) { g.decisions.push_back(f.decision()); });
    }
  }

  template <typename F>
  void record(F&& change) {
    std::lock_guard lock(mutex_);
    change(*this);
    changed_.notify_all();
  }

  std::string secret_;
  std::uint64_t epoch_;
  behaviour how_;
  std::atomic<bool> redelivers_{false};
  asio::io_context io_;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_{
      io_.get_executor()};
  asio::ip::tcp::acceptor acceptor_;
  std::uint16_t port_ = 0;
  std::thread thread_;
  std::map<std::uint64_t, std::shared_ptr<link_stream>> streams_;
  std::map<std::uint64_t, link_handshake::gateway_side> handshakes_;
  std::uint64_t next_stream_ = 0;
  std::uint64_t last_authenticated_ = 0;
  std::mutex mutex_;
  std::condition_variable changed_;
  answer_fn answer_;
  bool auto_drain_ack_ = false;
  std::set<std::string> worker_names_;
  std::mutex freeze_mutex_;
  std::condition_variable thawed_;
  bool frozen_ = false;
};

}  // namespace gwx::fakes
