#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>

#include "gwx/registry/v1/registry.pb.h"

namespace gwx::registry::test {

/// A Watch caller on a raw HTTP/2 connection that never reads: it answers SETTINGS and PING, as
/// any client library does, but never sends WINDOW_UPDATE, so a register's writes to it stall
/// once the 64 KiB of the initial flow-control windows are out. An application that opened
/// Watch streams and stopped reading looks like this to the register (a gRPC client library
/// cannot be made to: it opens its windows by itself). Plaintext only. Thread-safe.
class non_reading_client {
 public:
  explicit non_reading_client(std::uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd_ < 0 || ::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
      throw std::runtime_error("non_reading_client: cannot connect");
    }
    send_all("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    send_frame(k_settings, 0, 0, {});
    reader_ = std::thread([this] { read_frames(); });
  }

  ~non_reading_client() {
    ::shutdown(fd_, SHUT_RDWR);
    reader_.join();
    ::close(fd_);
  }

  non_reading_client(const non_reading_client&) = delete;
  non_reading_client& operator=(const non_reading_client&) = delete;

  /// Opens a Watch stream that announces itself as `name`.
  void watch(const std::string& name) {
    v1::WatchRequest request;
    request.set_watcher_name(name);
    const auto body = request.SerializeAsString();
    std::string message(5, '\0');  // gRPC's prefix: not compressed, then the length
    for (int i = 0; i < 4; ++i) {
      message[1 + i] = static_cast<char>(body.size() >> (24 - 8 * i));
    }
    message += body;
    std::string headers;
    for (const auto& [key, value] : {std::pair<std::string, std::string>{":method", "POST"},
                                     {":scheme", "http"},
                                     {":path", "/gwx.registry.v1.RegisterService/Watch"},
                                     {":authority", "127.0.0.1"},
                                     {"content-type", "application/grpc"},
                                     {"te", "trailers"}}) {
      // HPACK: a literal field without indexing, new name, no Huffman (all shorter than 127).
      headers += '\0';
      headers += static_cast<char>(key.size());
      headers += key;
      headers += static_cast<char>(value.size());
      headers += value;
    }
    std::lock_guard lock(write_mutex_);
    const auto stream = next_stream_;
    next_stream_ += 2;
    send_frame(k_headers, k_end_headers, stream, headers);
    send_frame(k_data, k_end_stream, stream, message);
  }

  /// DATA bytes the register sent, over all streams.
  std::size_t data_bytes() const { return data_bytes_.load(); }

  /// Streams the register ended: reset (RST_STREAM) or closed with trailers.
  std::size_t streams_ended() const {
    std::lock_guard lock(ended_mutex_);
    return ended_.size();
  }

 private:
  static constexpr std::uint8_t k_data = 0;
  static constexpr std::uint8_t k_headers = 1;
  static constexpr std::uint8_t k_rst_stream = 3;
  static constexpr std::uint8_t k_settings = 4;
  static constexpr std::uint8_t k_ping = 6;
  static constexpr std::uint8_t k_end_stream = 0x1;
  static constexpr std::uint8_t k_ack = 0x1;
  static constexpr std::uint8_t k_end_headers = 0x4;

  void send_all(std::string_view bytes) {
    while (!bytes.empty()) {
      const auto n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n <= 0) {
        return;
      }
      bytes.remove_prefix(static_cast<std::size_t>(n));
    }
  }

  void send_frame(std::uint8_t type, std::uint8_t flags, std::uint32_t stream,
                  std::string_view payload) {
    std::string frame(9, '\0');
    frame[0] = static_cast<char>(payload.size() >> 16);
    frame[1] = static_cast<char>(payload.size() >> 8);
    frame[2] = static_cast<char>(payload.size());
    frame[3] = static_cast<char>(type);
    frame[4] = static_cast<char>(flags);
    for (int i = 0; i < 4; ++i) {
      frame[5 + i] = static_cast<char>(stream >> (24 - 8 * i));
    }
    frame.append(payload);
    send_all(frame);
  }

  bool receive(std::string& out, std::size_t n) {
    out.resize(n);
    std::size_t got = 0;
    while (got < n) {
      const auto r = ::recv(fd_, out.data() + got, n - got, 0);
      if (r <= 0) {
        return false;
      }
      got += static_cast<std::size_t>(r);
    }
    return true;
  }

  void read_frames() {
    std::string header;
    std::string payload;
    while (receive(header, 9)) {
      const auto byte = [&header](int i) { return static_cast<std::uint8_t>(header[i]); };
      const std::size_t length =
          (std::size_t{byte(0)} << 16) | (std::size_t{byte(1)} << 8) | std::size_t{byte(2)};
      const auto type = byte(3);
      const auto flags = byte(4);
      const std::uint32_t stream = ((std::uint32_t{byte(5)} & 0x7f) << 24) |
                                   (std::uint32_t{byte(6)} << 16) | (std::uint32_t{byte(7)} << 8) |
                                   std::uint32_t{byte(8)};
      if (!receive(payload, length)) {
        return;
      }
      if (type == k_data) {
        data_bytes_ += length;
      } else if (type == k_rst_stream || (type == k_headers && (flags & k_end_stream) != 0)) {
        std::lock_guard lock(ended_mutex_);
        ended_.insert(stream);
      } else if ((type == k_settings || type == k_ping) && (flags & k_ack) == 0) {
        std::lock_guard lock(write_mutex_);
        send_frame(type, k_ack, 0, type == k_ping ? payload : std::string());
      }
    }
  }

  int fd_ = -1;
  std::mutex write_mutex_;
  std::uint32_t next_stream_ = 1;  ///< under write_mutex_
  std::atomic<std::size_t> data_bytes_{0};
  mutable std::mutex ended_mutex_;
  std::set<std::uint32_t> ended_;  ///< under ended_mutex_
  std::thread reader_;
};

}  // namespace gwx::registry::test
