#include "common/net/tls_io.hpp"

#include <openssl/err.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace gwx::net {
namespace {

tls_failure classify(unsigned long err) {
  if (ERR_GET_LIB(err) != ERR_LIB_SSL) {
    return tls_failure::protocol_error;
  }
  switch (ERR_GET_REASON(err)) {
    case SSL_R_HTTP_REQUEST:
    case SSL_R_HTTPS_PROXY_REQUEST:
    case SSL_R_WRONG_VERSION_NUMBER:
    case SSL_R_PACKET_LENGTH_TOO_LONG:
    case SSL_R_RECORD_LENGTH_MISMATCH:
    case SSL_R_UNKNOWN_PROTOCOL:
      return tls_failure::not_tls;
    case SSL_R_UNSUPPORTED_PROTOCOL:
    case SSL_R_VERSION_TOO_LOW:
    case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
      return tls_failure::version;
    case SSL_R_NO_SHARED_CIPHER:
    case SSL_R_NO_SHARED_GROUPS:
    case SSL_R_NO_SUITABLE_SIGNATURE_ALGORITHM:
    case SSL_R_NO_SHARED_SIGNATURE_ALGORITHMS:
    case SSL_R_NO_CIPHERS_AVAILABLE:
      return tls_failure::no_shared_cipher;
    case SSL_R_NO_APPLICATION_PROTOCOL:
    case SSL_R_TLSV1_ALERT_NO_APPLICATION_PROTOCOL:
      return tls_failure::alpn;
    case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
      return tls_failure::no_client_certificate;
    case SSL_R_CERTIFICATE_VERIFY_FAILED:
      return tls_failure::bad_client_certificate;
    case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED:
    case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE:
    case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
    case SSL_R_TLSV1_ALERT_ACCESS_DENIED:
    case SSL_R_TLSV1_ALERT_DECRYPT_ERROR:
      return tls_failure::certificate_rejected;
    case SSL_R_UNEXPECTED_EOF_WHILE_READING:
      return tls_failure::closed;
    default:
      return tls_failure::protocol_error;
  }
}

// The bytes of `bufs` from offset `done`: a view of one buffer when the next record's worth
// lies in it, else a copy of up to one record gathered from several into `scratch`.
std::pair<const char*, std::size_t> next_chunk(const std::vector<asio::const_buffer>& bufs,
                                               std::size_t done, std::string& scratch) {
  std::size_t skip = done;
  std::size_t i = 0;
  while (i < bufs.size() && skip >= bufs[i].size()) {
    skip -= bufs[i].size();
    ++i;
  }
  if (i == bufs.size()) {
    return {nullptr, 0};
  }
  const char* first = static_cast<const char*>(bufs[i].data()) + skip;
  const std::size_t first_len = bufs[i].size() - skip;
  if (first_len >= tls_io::k_record || i + 1 == bufs.size()) {
    return {first, std::min(first_len, tls_io::k_record)};
  }
  // Small segments (coalesced unicast, shared broadcasts) go out as one record, not one each.
  scratch.assign(first, first_len);
  for (++i; i < bufs.size() && scratch.size() < tls_io::k_record; ++i) {
    const std::size_t take = std::min(bufs[i].size(), tls_io::k_record - scratch.size());
    scratch.append(static_cast<const char*>(bufs[i].data()), take);
  }
  return {scratch.data(), scratch.size()};
}

std::string& write_scratch() {
  thread_local std::string buf;
  return buf;
}

}  // namespace

const char* to_string(tls_failure f) {
  switch (f) {
    case tls_failure::none:
      return "none";
    case tls_failure::timeout:
      return "timeout";
    case tls_failure::closed:
      return "closed";
    case tls_failure::not_tls:
      return "not_tls";
    case tls_failure::version:
      return "version";
    case tls_failure::no_shared_cipher:
      return "no_shared_cipher";
    case tls_failure::alpn:
      return "alpn";
    case tls_failure::no_client_certificate:
      return "no_client_certificate";
    case tls_failure::bad_client_certificate:
      return "bad_client_certificate";
    case tls_failure::certificate_rejected:
      return "certificate_rejected";
    case tls_failure::protocol_error:
      return "protocol_error";
  }
  return "protocol_error";
}

const std::vector<tls_failure>& all_tls_failures() {
  static const std::vector<tls_failure> all = {tls_failure::timeout,
                                               tls_failure::closed,
                                               tls_failure::not_tls,
                                               tls_failure::version,
                                               tls_failure::no_shared_cipher,
                                               tls_failure::alpn,
                                               tls_failure::no_client_certificate,
                                               tls_failure::bad_client_certificate,
                                               tls_failure::certificate_rejected,
                                               tls_failure::protocol_error};
  return all;
}

tls_io::tls_io(ssl_ptr ssl, int fd) : ssl_(std::move(ssl)) {
  if (ssl_) {
    SSL_set_fd(ssl_.get(), fd);
  }
}

tls_status tls_io::status_of(int ret) {
  const int err = SSL_get_error(ssl_.get(), ret);
  switch (err) {
    case SSL_ERROR_WANT_READ:
      return tls_status::want_read;
    case SSL_ERROR_WANT_WRITE:
      return tls_status::want_write;
    case SSL_ERROR_ZERO_RETURN:
      ERR_clear_error();
      return tls_status::closed;
    default:
      break;
  }
  // Nothing more may be sent on this connection, not even close_notify.
  broken_ = true;
  const unsigned long first = ERR_peek_error();
  if (err == SSL_ERROR_SYSCALL && first == 0) {
    const int saved = errno;
    failure_ = tls_failure::closed;
    detail_ = saved == 0 ? "connection closed" : std::strerror(saved);
    return tls_status::closed;
  }
  failure_ = first == 0 ? tls_failure::protocol_error : classify(first);
  detail_ = take_openssl_error();
  if (failure_ == tls_failure::bad_client_certificate) {
    detail_ +=
        std::string(" (") + X509_verify_cert_error_string(SSL_get_verify_result(ssl_.get())) + ")";
  }
  return failure_ == tls_failure::closed ? tls_status::closed : tls_status::failed;
}

tls_status tls_io::handshake() {
  ERR_clear_error();
  const int r = SSL_do_handshake(ssl_.get());
  if (r == 1) {
    established_ = true;
    return tls_status::ok;
  }
  const auto st = status_of(r);
  if (st == tls_status::closed && failure_ == tls_failure::none) {
    failure_ = tls_failure::closed;
  }
  return st;
}

tls_status tls_io::read(char* buf, std::size_t cap, std::size_t& n) {
  ERR_clear_error();
  n = 0;
  if (SSL_read_ex(ssl_.get(), buf, cap, &n) == 1) {
    return tls_status::ok;
  }
  return status_of(0);
}

tls_status tls_io::write(const std::vector<asio::const_buffer>& bufs) {
  std::size_t& done = written_;
  for (;;) {
    const char* data = nullptr;
    std::size_t size = 0;
    if (!stalled_.empty()) {
      data = stalled_.data();
      size = stalled_.size();
    } else {
      std::tie(data, size) = next_chunk(bufs, done, write_scratch());
      if (size == 0) {
        done = 0;
        return tls_status::ok;
      }
    }
    ERR_clear_error();
    std::size_t written = 0;
    if (SSL_write_ex(ssl_.get(), data, size, &written) == 1) {
      done += written;
      if (!stalled_.empty()) {
        std::string().swap(stalled_);
      }
      continue;
    }
    const auto st = status_of(0);
    if ((st == tls_status::want_write || st == tls_status::want_read) && stalled_.empty()) {
      // OpenSSL holds the encrypted record and must be called again with the same bytes.
      stalled_.assign(data, size);
    }
    return st;
  }
}

void tls_io::shutdown() {
  if (established_ && !broken_) {
    ERR_clear_error();
    SSL_shutdown(ssl_.get());
    ERR_clear_error();
  }
}

}  // namespace gwx::net
