#include "common/net/link_stream.hpp"

#include <gtest/gtest.h>

#include <asio.hpp>
#include <chrono>

#include "common/link/link_codec.hpp"
#include "common/net/tls_files.hpp"
#include "common/tls_options.hpp"
#include "tests/unit/common/tls_test_pki.hpp"

namespace gwx {
namespace {

using namespace std::chrono_literals;

struct socket_pair {
  asio::io_context io;
  asio::ip::tcp::acceptor acceptor{io, {asio::ip::make_address("127.0.0.1"), 0}};
  asio::ip::tcp::socket client{io};
  asio::ip::tcp::socket server{io};

  socket_pair() {
    client.connect(acceptor.local_endpoint());
    server = acceptor.accept();
  }

  template <typename Done>
  void run_until(Done done, std::chrono::seconds limit = 10s) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done() && std::chrono::steady_clock::now() < deadline) {
      io.run_for(10ms);
    }
  }
};

link::v2::Frame event(std::uint64_t id) {
  link::v2::Frame ev;
  ev.mutable_event()->set_event_id(id);
  return ev;
}

// Many frames arriving faster than they are read fill the read buffer past half its size in one
// read; consuming them must keep the buffer usable (this once threw std::length_error).
TEST(LinkStream, DeliversABurstOfFramesWithTheirPayloadsInOrder) {
  socket_pair p;
  std::string closed;
  std::vector<std::uint64_t> ids;
  std::size_t bad_payloads = 0;
  auto receiver = std::make_shared<link_stream>(std::move(p.server));
  auto sender = std::make_shared<link_stream>(std::move(p.client));
  sender->start([](link::v2::Frame&, std::string_view) {}, [](const std::string&) {});

  constexpr std::uint64_t k_frames = 20000;
  // Queue everything before the receiver reads anything, so its reads come back full.
  for (std::uint64_t i = 0; i < k_frames; ++i) {
    sender->send(event(i), std::string(100, static_cast<char>('a' + i % 26)));
  }
  receiver->start(
      [&](link::v2::Frame& fr, std::string_view payload) {
        const auto id = fr.event().event_id();
        bad_payloads += payload != std::string(100, static_cast<char>('a' + id % 26)) ? 1 : 0;
        ids.push_back(id);
      },
      [&](const std::string& why) { closed = why; });
  p.run_until([&] { return ids.size() >= k_frames || !closed.empty(); });
  EXPECT_EQ(closed, "");
  EXPECT_EQ(bad_payloads, 0U);
  ASSERT_EQ(ids.size(), k_frames);
  for (std::uint64_t i = 0; i < k_frames; ++i) {
    ASSERT_EQ(ids[i], i);
  }
}

// Frames queued by one handler leave together once it returns; a close() in that same handler
// (a Reject, then close) must still deliver them, in order, before the link ends. Both on a
// fresh link (the preamble's write may still be in flight) and on one that has been idle.
TEST(LinkStream, FramesQueuedJustBeforeCloseStillArriveInOrder) {
  for (const bool idle_first : {false, true}) {
    socket_pair p;
    std::vector<std::uint64_t> ids;
    std::string receiver_closed;
    std::string sender_closed;
    auto receiver = std::make_shared<link_stream>(std::move(p.server));
    auto sender = std::make_shared<link_stream>(std::move(p.client));
    sender->start([](link::v2::Frame&, std::string_view) {},
                  [&](const std::string& why) { sender_closed = why; });
    receiver->start(
        [&](link::v2::Frame& fr, std::string_view) { ids.push_back(fr.event().event_id()); },
        [&](const std::string& why) { receiver_closed = why; });
    if (idle_first) {
      p.io.run_for(50ms);  // the preambles are written and read
      ASSERT_EQ(sender->queued_bytes(), 0U);
    }
    asio::post(p.io, [&] {
      for (std::uint64_t i = 0; i < 3; ++i) {
        sender->send(event(i), "payload");
      }
      sender->close("done");
    });
    p.run_until([&] { return !receiver_closed.empty(); });
    EXPECT_EQ(ids, (std::vector<std::uint64_t>{0, 1, 2})) << "idle first: " << idle_first;
    EXPECT_EQ(sender_closed, "done");
    EXPECT_FALSE(receiver_closed.empty());
  }
}

// Before the handshake only tiny frames pass: an unauthenticated peer cannot make the other
// side buffer megabytes.
TEST(LinkStream, RefusesLargeFramesUntilAuthenticated) {
  for (const bool authenticated : {false, true}) {
    socket_pair p;
    std::string closed;
    std::size_t got = 0;
    auto receiver = std::make_shared<link_stream>(std::move(p.server), 1 << 20);
    auto sender = std::make_shared<link_stream>(std::move(p.client));
    sender->start([](link::v2::Frame&, std::string_view) {}, [](const std::string&) {});
    receiver->start([&](link::v2::Frame&, std::string_view) { ++got; },
                    [&](const std::string& why) { closed = why; });
    if (authenticated) {
      receiver->authenticated();
    }
    sender->send(event(1), std::string(5000, 'x'));
    p.run_until([&] { return got > 0 || !closed.empty(); });
    if (authenticated) {
      EXPECT_EQ(got, 1U);
      EXPECT_EQ(closed, "");
    } else {
      EXPECT_EQ(got, 0U);
      EXPECT_EQ(closed, "link frame larger than the limit");
    }
  }
}

// A large frame's read buffer is given back even when the reads that follow end inside a frame,
// as they mostly do on a busy link (it was kept until a read ended exactly between frames).
TEST(LinkStream, AReadBufferGrownByALargeFrameShrinksWhileAFrameIsUnfinished) {
  socket_pair p;
  std::string closed;
  std::vector<std::uint64_t> ids;
  auto receiver = std::make_shared<link_stream>(std::move(p.server));
  receiver->start(
      [&](link::v2::Frame& fr, std::string_view) { ids.push_back(fr.event().event_id()); },
      [&](const std::string& why) { closed = why; });
  receiver->authenticated();
  // The large frame, a small one, then the first bytes of the next: the read that ends the
  // large frame ends inside another, with the buffer at the large frame's size.
  std::string next;
  link_codec::encode(next, event(3), "three");
  std::string wire(link_codec::preamble());
  link_codec::encode(wire, event(1), std::string(8 << 20, 'x'));
  link_codec::encode(wire, event(2), "two");
  wire += next.substr(0, 5);
  // Written while the receiver reads (a blocking write of 8 MiB would wait for it forever).
  asio::async_write(p.client, asio::buffer(wire), [](const asio::error_code&, std::size_t) {});
  p.run_until([&] { return ids.size() == 2 || !closed.empty(); });
  ASSERT_EQ(ids.size(), 2U) << closed;
  p.run_until([&] { return receiver->read_buffer_bytes() < (1U << 20); }, 2s);
  EXPECT_LT(receiver->read_buffer_bytes(), 1U << 20);
  // The unfinished frame survived the move: its rest completes it.
  asio::write(p.client, asio::buffer(next.substr(5)));
  p.run_until([&] { return ids.size() == 3 || !closed.empty(); });
  EXPECT_EQ(ids, (std::vector<std::uint64_t>{1, 2, 3}));
  EXPECT_EQ(closed, "");
}

// A frame over the link's limit would make the peer cut the link (and a worker's event be
// redelivered to the handler that sent it, again and again): it is not sent, the link stays.
TEST(LinkStream, AFrameOverTheFrameLimitIsNotSentAndTheLinkStays) {
  socket_pair p;
  std::string closed;
  std::vector<std::uint64_t> ids;
  std::size_t payload_bytes = 0;
  constexpr std::size_t k_limit = 1 << 20;
  auto sender = std::make_shared<link_stream>(std::move(p.client), k_limit);
  auto receiver = std::make_shared<link_stream>(std::move(p.server), k_limit);
  sender->start([](link::v2::Frame&, std::string_view) {},
                [&](const std::string& why) { closed = why; });
  receiver->start(
      [&](link::v2::Frame& fr, std::string_view payload) {
        ids.push_back(fr.event().event_id());
        payload_bytes += payload.size();
      },
      [&](const std::string& why) { closed = why; });
  sender->authenticated();
  receiver->authenticated();
  EXPECT_EQ(sender->send(event(1), std::string(k_limit, 'x')), net::send_status::dropped);
  EXPECT_EQ(sender->send_to_client("c", false, std::string(k_limit, 'y')),
            net::send_status::dropped);
  EXPECT_EQ(sender->frames_too_large(), 2U);
  // The largest frame that fits still goes, and so does what follows.
  const auto fits = k_limit - link_codec::encoded_size(event(2), 0);
  EXPECT_NE(sender->send(event(2), std::string(fits, 'z')), net::send_status::dropped);
  EXPECT_NE(sender->send(event(3), "three"), net::send_status::dropped);
  p.run_until([&] { return ids.size() == 2 || !closed.empty(); });
  EXPECT_EQ(ids, (std::vector<std::uint64_t>{2, 3}));
  EXPECT_EQ(payload_bytes, fits + 5);
  EXPECT_EQ(closed, "");
  EXPECT_TRUE(sender->is_open());
  EXPECT_TRUE(receiver->is_open());
}

// A peer that stops reading cannot grow our memory without bound: the link is cut at the cap.
TEST(LinkStream, CutsAPeerThatStopsReadingAtTheSendCap) {
  socket_pair p;
  std::string closed;
  constexpr std::size_t k_cap = 4 << 20;
  auto sender = std::make_shared<link_stream>(std::move(p.client), 1 << 20, k_cap);
  sender->start([](link::v2::Frame&, std::string_view) {},
                [&](const std::string& why) { closed = why; });
  // The other end never reads: the kernel buffers fill, then our queue.
  const std::string payload(64 * 1024, 'x');
  net::send_status status = net::send_status::ok;
  bool saw_backpressure = false;
  for (int i = 0; i < 10000 && status != net::send_status::dropped; ++i) {
    status = sender->send(event(i), payload);
    saw_backpressure = saw_backpressure || status == net::send_status::backpressured;
    p.io.poll();
    EXPECT_LE(sender->queued_bytes(), k_cap + payload.size() * 2);
  }
  EXPECT_TRUE(saw_backpressure);
  EXPECT_EQ(status, net::send_status::dropped);
  EXPECT_NE(closed.find("peer is not reading"), std::string::npos) << closed;
  EXPECT_FALSE(sender->is_open());
}

TEST(LinkStream, RefusesAPeerOfAnotherProtocolVersionWithAClearReason) {
  socket_pair p;
  std::string closed;
  auto receiver = std::make_shared<link_stream>(std::move(p.server));
  receiver->start([](link::v2::Frame&, std::string_view) {},
                  [&](const std::string& why) { closed = why; });
  // What a version-1 peer sends first: a 4-byte length and a protobuf frame.
  asio::write(p.client, asio::buffer(std::string("\0\0\0\x04\x2a\x02\x08\x01", 8)));
  p.run_until([&] { return !closed.empty(); });
  EXPECT_NE(closed.find("does not speak gwx link protocol 2"), std::string::npos) << closed;
}

// --- TLS links ----------------------------------------------------------------------------

// A cluster CA with a gateway and a worker certificate, and a stranger's CA and certificate.
struct link_pki {
  test::test_pki pki;
  tls_files gateway;
  tls_files worker;
  tls_files stranger;

  link_pki() {
    const auto ca = pki.make_ca("cluster");
    const auto other_ca = pki.make_ca("other");
    const auto g = pki.make_leaf("cluster", "gateway", "gateway", {"IP:127.0.0.1"});
    const auto w = pki.make_leaf("cluster", "worker", "worker", {"DNS:worker"});
    const auto x = pki.make_leaf("other", "stranger", "stranger", {"DNS:stranger"});
    gateway = {g.cert_file, g.key_file, ca};
    worker = {w.cert_file, w.key_file, ca};
    stranger = {x.cert_file, x.key_file, other_ca};
  }
};

struct link_end {
  explicit link_end(std::shared_ptr<link_stream> s) : stream(std::move(s)) {}

  std::shared_ptr<link_stream> stream;
  std::string closed;
  std::vector<link::v2::Frame> frames;

  void start() {
    stream->start([this](link::v2::Frame& f, std::string_view) { frames.push_back(f); },
                  [this](const std::string& why) { closed = why; });
  }
};

TEST(LinkStreamTls, CarriesABurstOfFramesBothWaysInOrder) {
  link_pki pki;
  socket_pair p;
  auto server_ctx = make_tls_server(pki.gateway);
  auto client_ctx = make_tls_client(pki.worker);
  link_end server{std::make_shared<link_stream>(
      std::move(p.server), 1 << 20, link_stream::k_default_send_cap, server_ctx->new_ssl())};
  link_end client{std::make_shared<link_stream>(
      std::move(p.client), 1 << 20, link_stream::k_default_send_cap, client_ctx->new_ssl())};
  EXPECT_TRUE(server.stream->tls());
  server.start();
  client.start();
  server.stream->authenticated();
  client.stream->authenticated();
  constexpr std::uint64_t k_frames = 5000;
  // Queued before the handshake is over: everything leaves once it is, in order.
  for (std::uint64_t i = 0; i < k_frames; ++i) {
    client.stream->send(event(i), std::string(100 + i % 300, 'c'));
    server.stream->send(event(i), std::string(100 + i % 300, 's'));
  }
  p.run_until([&] {
    return (client.frames.size() >= k_frames && server.frames.size() >= k_frames) ||
           !client.closed.empty() || !server.closed.empty();
  });
  EXPECT_EQ(server.closed, "");
  EXPECT_EQ(client.closed, "");
  ASSERT_EQ(server.frames.size(), k_frames);
  ASSERT_EQ(client.frames.size(), k_frames);
  for (std::uint64_t i = 0; i < k_frames; ++i) {
    ASSERT_EQ(server.frames[i].event().event_id(), i);
    ASSERT_EQ(client.frames[i].event().event_id(), i);
  }
  // A large frame crosses many TLS records.
  client.stream->send(event(k_frames), std::string(300 * 1024, 'L'));
  p.run_until([&] { return server.frames.size() > k_frames || !server.closed.empty(); });
  EXPECT_EQ(server.frames.size(), k_frames + 1);
}

TEST(LinkStreamTls, APlainPeerOfATlsServerIsToldWhyInARejectFrame) {
  link_pki pki;
  socket_pair p;
  auto server_ctx = make_tls_server(pki.gateway);
  link_end server{std::make_shared<link_stream>(
      std::move(p.server), 1 << 20, link_stream::k_default_send_cap, server_ctx->new_ssl())};
  link_end client{std::make_shared<link_stream>(std::move(p.client))};
  server.start();
  client.start();
  p.run_until([&] { return !server.closed.empty() && !client.closed.empty(); });
  EXPECT_NE(server.closed.find("the peer speaks a plain link, this end requires TLS"),
            std::string::npos)
      << server.closed;
  ASSERT_EQ(client.frames.size(), 1U);
  ASSERT_TRUE(client.frames[0].has_reject());
  EXPECT_NE(client.frames[0].reject().reason().find("TLS is required on this link"),
            std::string::npos);
}

TEST(LinkStreamTls, ATlsClientOfAPlainServerIsRefusedOnBothEnds) {
  link_pki pki;
  socket_pair p;
  auto client_ctx = make_tls_client(pki.worker);
  link_end server{std::make_shared<link_stream>(std::move(p.server))};
  link_end client{std::make_shared<link_stream>(
      std::move(p.client), 1 << 20, link_stream::k_default_send_cap, client_ctx->new_ssl())};
  server.start();
  client.start();
  p.run_until([&] { return !server.closed.empty() && !client.closed.empty(); });
  EXPECT_NE(client.closed.find("the peer speaks a plain link, this end requires TLS"),
            std::string::npos)
      << client.closed;
  EXPECT_NE(server.closed.find("the peer speaks TLS, this end's links are plain"),
            std::string::npos)
      << server.closed;
  EXPECT_TRUE(server.frames.empty());
  EXPECT_TRUE(client.frames.empty());
}

TEST(LinkStreamTls, ACertificateFromAnotherCaGetsNoFrameThrough) {
  link_pki pki;
  // The stranger's certificate with the cluster CA (so it trusts the gateway): the gateway
  // refuses it. Then a worker that trusts another CA: it refuses the gateway.
  const tls_files stranger_trusting_cluster{pki.stranger.cert, pki.stranger.key, pki.worker.ca};
  const tls_files worker_trusting_other{pki.worker.cert, pki.worker.key, pki.stranger.ca};
  struct expectation {
    tls_files client;
    const char* server_reason;
    const char* client_reason;
  };
  for (const auto& e : {expectation{stranger_trusting_cluster, "certificate verify failed",
                                    "the peer refused this end's certificate"},
                        expectation{worker_trusting_other, "refused this end's certificate",
                                    "certificate verify failed"}}) {
    socket_pair p;
    auto server_ctx = make_tls_server(pki.gateway);
    auto client_ctx = make_tls_client(e.client);
    link_end server{std::make_shared<link_stream>(
        std::move(p.server), 1 << 20, link_stream::k_default_send_cap, server_ctx->new_ssl())};
    link_end client{std::make_shared<link_stream>(
        std::move(p.client), 1 << 20, link_stream::k_default_send_cap, client_ctx->new_ssl())};
    server.start();
    client.start();
    client.stream->send(event(1));
    server.stream->send(event(2));
    p.run_until([&] { return !server.closed.empty() && !client.closed.empty(); });
    EXPECT_NE(server.closed.find(e.server_reason), std::string::npos) << server.closed;
    EXPECT_NE(client.closed.find(e.client_reason), std::string::npos) << client.closed;
    EXPECT_TRUE(server.frames.empty());
    EXPECT_TRUE(client.frames.empty());
  }
}

// A receiver that pauses reading gets no further frames (beyond the read it was in), its peer
// keeps the rest queued (TCP backpressure), its keepalive does not take the silence for a dead
// peer, and after resuming everything arrives in order. Plain and over TLS (where OpenSSL may
// already hold decrypted bytes when reading resumes).
TEST(LinkStream, PausedReadingHoldsThePeerBackUntilResumed) {
  link_pki pki;
  for (const bool tls : {false, true}) {
    SCOPED_TRACE(tls ? "tls" : "plain");
    socket_pair p;
    auto server_ctx = make_tls_server(pki.gateway);
    auto client_ctx = make_tls_client(pki.worker);
    link_end receiver{std::make_shared<link_stream>(std::move(p.server), 1 << 20,
                                                    link_stream::k_default_send_cap,
                                                    tls ? server_ctx->new_ssl() : nullptr)};
    link_end sender{std::make_shared<link_stream>(std::move(p.client), 1 << 20,
                                                  link_stream::k_default_send_cap,
                                                  tls ? client_ctx->new_ssl() : nullptr)};
    receiver.stream->start(
        [&](link::v2::Frame& f, std::string_view) {
          receiver.frames.push_back(f);
          if (receiver.frames.size() == 1) {
            receiver.stream->pause_reading(true);
            // From the pause on: before it, a sender still encrypting 16 MB (slow under a
            // sanitizer, on a busy machine) could keep the shared loop from the first frame
            // for longer than the timeout, which is not what this test is about.
            receiver.stream->enable_keepalive(20ms, 200ms);
          }
        },
        [&](const std::string& why) { receiver.closed = why; });
    sender.start();
    receiver.stream->authenticated();
    sender.stream->authenticated();
    constexpr std::uint64_t k_frames = 4000;
    constexpr std::size_t k_payload = 4096;  // 16 MB in all: far more than the socket buffers
    for (std::uint64_t i = 0; i < k_frames; ++i) {
      sender.stream->send(event(i), std::string(k_payload, 'p'));
    }
    // Several keepalive timeouts: nothing more is read and the link stays up.
    p.run_until([] { return false; }, 1s);
    EXPECT_EQ(receiver.closed, "");
    EXPECT_TRUE(receiver.stream->reading_paused());
    EXPECT_LT(receiver.frames.size(), 64U);  // the frames of the read that paused, no more
    EXPECT_GT(sender.stream->queued_bytes(), 4U << 20) << "the sender kept what was not read";
    receiver.stream->pause_reading(false);
    p.run_until([&] { return receiver.frames.size() >= k_frames || !receiver.closed.empty(); });
    EXPECT_EQ(receiver.closed, "");
    ASSERT_EQ(receiver.frames.size(), k_frames);
    for (std::uint64_t i = 0; i < k_frames; ++i) {
      ASSERT_EQ(receiver.frames[i].event().event_id(), i);
    }
  }
}

}  // namespace
}  // namespace gwx
