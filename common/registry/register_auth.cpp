#include "common/registry/register_auth.hpp"

#include <algorithm>
#include <charconv>
#include <utility>

#include "common/link_auth.hpp"

namespace gwx::registry {
namespace {

constexpr std::string_view k_v2_prefix = "v2:";
constexpr std::size_t k_min_nonce = 16;
constexpr std::size_t k_max_nonce = 64;
constexpr std::size_t k_hmac_hex = 64;

std::int64_t unix_ms_now() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::int64_t unix_seconds_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string to_hex(std::string_view bytes) {
  static constexpr char k_digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (const char c : bytes) {
    const auto b = static_cast<unsigned char>(c);
    out.push_back(k_digits[b >> 4]);
    out.push_back(k_digits[b & 0x0f]);
  }
  return out;
}

bool is_lower_hex(std::string_view text) {
  return std::all_of(text.begin(), text.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

// A non-negative decimal of at most `max_digits` digits, nothing else.
bool parse_decimal(std::string_view text, std::size_t max_digits, std::int64_t& out) {
  if (text.empty() || text.size() > max_digits) {
    return false;
  }
  const auto* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, out);
  return ec == std::errc{} && ptr == end && out >= 0;
}

std::string v2_hmac(std::string_view token, std::string_view method, std::string_view unix_ms,
                    std::string_view nonce) {
  std::string data = "gwx-register-v2\n";
  data.append(method).append("\n").append(unix_ms).append("\n").append(nonce);
  return link_auth::hmac_hex(token, data);
}

}  // namespace

std::string make_auth_proof(const std::string& token, std::string_view method) {
  if (token.empty()) {
    return {};
  }
  const auto unix_ms = std::to_string(unix_ms_now());
  const auto nonce = to_hex(link_auth::make_nonce());
  return std::string(k_v2_prefix) + unix_ms + ":" + nonce + ":" +
         v2_hmac(token, method, unix_ms, nonce);
}

std::string make_auth_value(const std::string& token) {
  if (token.empty()) {
    return {};
  }
  const auto seconds = std::to_string(unix_seconds_now());
  return seconds + ":" + link_auth::hmac_hex(token, seconds);
}

bool check_auth_value(const std::string& token, const std::string& value,
                      std::chrono::seconds skew) {
  if (token.empty()) {
    return true;
  }
  const auto colon = value.find(':');
  if (colon == std::string::npos) {
    return false;
  }
  const std::string_view seconds_text(value.data(), colon);
  std::int64_t seconds = 0;
  if (!parse_decimal(seconds_text, 19, seconds)) {
    return false;
  }
  const auto now = unix_seconds_now();
  if (seconds > now + skew.count() || seconds < now - skew.count()) {
    return false;
  }
  const auto expected = link_auth::hmac_hex(token, seconds_text);
  return link_auth::equal(std::string_view(value).substr(colon + 1), expected);
}

auth_verifier::auth_verifier(std::string token, std::chrono::milliseconds window,
                             std::chrono::milliseconds legacy_window, std::size_t max_nonces,
                             clock_fn clock)
    : token_(std::move(token)),
      window_(window),
      legacy_window_(legacy_window),
      max_nonces_(std::max<std::size_t>(max_nonces, 1)),
      clock_(clock ? std::move(clock) : clock_fn(unix_ms_now)) {}

auth_result auth_verifier::check(std::string_view method, std::string_view value) {
  if (token_.empty()) {
    return auth_result::ok;
  }
  if (value.substr(0, k_v2_prefix.size()) != k_v2_prefix) {
    if (legacy_window_.count() <= 0) {
      return auth_result::invalid;
    }
    return check_auth_value(token_, std::string(value),
                            std::chrono::duration_cast<std::chrono::seconds>(legacy_window_))
               ? auth_result::ok
               : auth_result::invalid;
  }
  value.remove_prefix(k_v2_prefix.size());
  const auto first = value.find(':');
  if (first == std::string_view::npos) {
    return auth_result::invalid;
  }
  const auto second = value.find(':', first + 1);
  if (second == std::string_view::npos) {
    return auth_result::invalid;
  }
  const auto ms_text = value.substr(0, first);
  const auto nonce = value.substr(first + 1, second - first - 1);
  const auto mac = value.substr(second + 1);
  std::int64_t unix_ms = 0;
  if (!parse_decimal(ms_text, 15, unix_ms) || nonce.size() < k_min_nonce ||
      nonce.size() > k_max_nonce || !is_lower_hex(nonce) || mac.size() != k_hmac_hex) {
    return auth_result::invalid;
  }
  // The HMAC first: only a token holder learns whether the time or the nonce was the problem.
  if (!link_auth::equal(mac, v2_hmac(token_, method, ms_text, nonce))) {
    return auth_result::invalid;
  }
  const auto now = clock_();
  if (unix_ms > now + window_.count() || unix_ms < now - window_.count()) {
    return auth_result::stale;
  }
  return spend(unix_ms, now, std::string(nonce));
}

auth_result auth_verifier::spend(std::int64_t unix_ms, std::int64_t now_ms,
                                 const std::string& nonce) {
  std::lock_guard lock(mutex_);
  // Forget what can no longer be replayed: its time is out of the window. The clock was read
  // before the lock, so another check may have purged with a later clock than this one's: a
  // proof at or below the highest horizon purged so far is refused, even when this check's
  // own, earlier clock still has it in the window (its nonce may be forgotten already).
  horizon_ms_ = std::max(horizon_ms_, now_ms - window_.count() - 1);
  while (!by_time_.empty() && by_time_.begin()->first <= horizon_ms_) {
    nonces_.erase(by_time_.begin()->second);
    by_time_.erase(by_time_.begin());
  }
  if (unix_ms <= horizon_ms_) {
    return auth_result::stale;
  }
  if (unix_ms <= floor_ms_) {
    return auth_result::replayed;
  }
  if (!nonces_.insert(nonce).second) {
    return auth_result::replayed;
  }
  by_time_.emplace(unix_ms, nonce);
  // Past the cap, the earliest proof time is forgotten, never the earliest accepted: a caller
  // whose clock runs ahead must not lift the floor over the honest proofs of everyone else.
  while (by_time_.size() > max_nonces_) {
    floor_ms_ = std::max(floor_ms_, by_time_.begin()->first);
    nonces_.erase(by_time_.begin()->second);
    by_time_.erase(by_time_.begin());
  }
  return auth_result::ok;
}

std::size_t auth_verifier::remembered() const {
  std::lock_guard lock(mutex_);
  return nonces_.size();
}

}  // namespace gwx::registry
