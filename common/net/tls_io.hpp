#pragma once

#include <asio/buffer.hpp>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "common/net/tls_context.hpp"

namespace gwx::net {

/// What a TLS operation on a non-blocking socket came to.
enum class tls_status : std::uint8_t {
  ok,          ///< done (handshake complete, bytes read or all bytes written)
  want_read,   ///< wait until the socket is readable, then call again
  want_write,  ///< wait until the socket is writable, then call again
  closed,      ///< the peer closed the connection (close_notify or EOF)
  failed,      ///< a TLS or socket error: see failure() / failure_detail()
};

/// Why a TLS handshake failed, as counted in metrics (a small fixed set).
enum class tls_failure : std::uint8_t {
  none,
  timeout,                 ///< not finished within the handshake timeout
  closed,                  ///< the peer went away during the handshake
  not_tls,                 ///< plain text (HTTP, garbage) where a ClientHello belongs
  version,                 ///< no common protocol version (TLS < 1.2 offered)
  no_shared_cipher,        ///< no common cipher, group or signature algorithm
  alpn,                    ///< the peer offered ALPN but none of our protocols
  no_client_certificate,   ///< a client certificate was required and none came
  bad_client_certificate,  ///< the client's certificate did not verify against the CA
  certificate_rejected,    ///< the peer refused our certificate (alert: unknown CA, bad cert…)
  protocol_error,          ///< anything else
};

/// The label of a failure in metrics and logs ("not_tls", …).
const char* to_string(tls_failure f);
/// Every failure reason but none, for registering metrics.
const std::vector<tls_failure>& all_tls_failures();

/// One TLS connection over a connected non-blocking socket descriptor (OpenSSL reads and writes
/// the descriptor itself, so idle connections hold no buffers: SSL_MODE_RELEASE_BUFFERS). The
/// caller owns the socket and does the waiting: every call returns at once, asking for
/// readability or writability when it cannot go on. Not thread-safe.
class tls_io {
 public:
  /// Largest plaintext in one TLS record.
  static constexpr std::size_t k_record = 16 * 1024;

  /// `ssl` null (out of memory): native() is null and nothing else may be called.
  tls_io(ssl_ptr ssl, int fd);

  /// Runs the handshake as far as it can.
  tls_status handshake();
  bool established() const { return established_; }

  /// Decrypts into `buf` (at most `cap` bytes); `n` is set to what was read when ok.
  tls_status read(char* buf, std::size_t cap, std::size_t& n);

  /// Encrypts and sends the bytes of `bufs`; ok once all are sent. After want_write (or
  /// want_read), call again with the same buffers: it goes on where it stopped.
  tls_status write(const std::vector<asio::const_buffer>& bufs);

  /// Sends close_notify if the connection is in a state to (best effort, never waits).
  void shutdown();

  /// After a failed handshake: the reason category, and OpenSSL's words for it.
  tls_failure failure() const { return failure_; }
  const std::string& failure_detail() const { return detail_; }

  SSL* native() const { return ssl_.get(); }

 private:
  tls_status status_of(int ret);

  ssl_ptr ssl_;
  /// A record's plaintext waiting for the socket (a retried SSL_write must see the same bytes);
  /// empty, holding no memory, while writes go through.
  std::string stalled_;
  /// Bytes of the buffers being written that OpenSSL took so far.
  std::size_t written_ = 0;
  bool established_ = false;
  bool broken_ = false;
  tls_failure failure_ = tls_failure::none;
  std::string detail_;
};

}  // namespace gwx::net
