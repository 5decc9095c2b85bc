#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_set>

namespace gwx::registry {

/// gRPC metadata key that carries the proof of the shared register token.
constexpr const char* k_auth_metadata = "x-gwx-auth";

/// A proof of `token` for one call of `method` ("Heartbeat", "Withdraw", "List", "Watch"):
/// "v2:<unix_ms>:<nonce hex>:<hex HMAC-SHA256(token, "gwx-register-v2\n" method "\n" unix_ms
/// "\n" nonce)>". The token never leaves the process; the proof is good for one call of that
/// method only. Empty token: empty value (no header). Thread-safe.
std::string make_auth_proof(const std::string& token, std::string_view method);

/// The version-1 proof "<unix_seconds>:<hex HMAC-SHA256(token, unix_seconds)>": valid for any
/// method and replayable within its window. Kept for registers run with --legacy-auth-window-s
/// while older gateways and workers are upgraded.
std::string make_auth_value(const std::string& token);

/// Checks a version-1 proof, accepting clocks up to `skew` apart. Empty token: always true.
bool check_auth_value(const std::string& token, const std::string& value,
                      std::chrono::seconds skew = std::chrono::seconds(300));

/// Outcome of checking a proof.
enum class auth_result {
  ok,
  /// Not a proof of this token for this method (bad HMAC, bad form, another method).
  invalid,
  /// Outside the accepted window of the register's clock.
  stale,
  /// A proof already used once.
  replayed,
};

/// The register's side of the token check: verifies version-2 proofs (method, time window and
/// HMAC) and remembers every nonce it accepted until its time leaves the window, so that a
/// proof captured on the wire cannot be used again. The memory is bounded: past `max_nonces`,
/// the nonces of the earliest proof times are forgotten and every proof not later than them is
/// refused from then on. A proof is also refused once any check, whichever thread's clock it
/// read, has seen its time leave the window: purging and checking agree even when checks run
/// side by side with clocks read a moment apart.
/// Thread-safe.
class auth_verifier {
 public:
  /// The register's clock, in Unix milliseconds.
  using clock_fn = std::function<std::int64_t()>;

  /// `window`: how far a proof's time may be from the register's clock (either way). `clock`:
  /// the system clock when empty (tests pass their own).
  explicit auth_verifier(std::string token,
                         std::chrono::milliseconds window = std::chrono::seconds(60),
                         std::chrono::milliseconds legacy_window = std::chrono::milliseconds(0),
                         std::size_t max_nonces = 100000, clock_fn clock = {});

  /// True when a token is set (access limited).
  bool enabled() const { return !token_.empty(); }

  /// Checks `value` (the x-gwx-auth metadata) for a call of `method`; on success the proof is
  /// spent. Empty token: always ok.
  auth_result check(std::string_view method, std::string_view value);

  /// Nonces currently remembered.
  std::size_t remembered() const;

 private:
  auth_result spend(std::int64_t unix_ms, std::int64_t now_ms, const std::string& nonce);

  const std::string token_;
  const std::chrono::milliseconds window_;
  // Version-1 proofs are accepted within this window; zero refuses them.
  const std::chrono::milliseconds legacy_window_;
  const std::size_t max_nonces_;
  const clock_fn clock_;

  mutable std::mutex mutex_;
  std::unordered_set<std::string> nonces_;
  // The same nonces by proof time; forgotten from the earliest once out of the window (or past
  // the cap).
  std::multimap<std::int64_t, std::string> by_time_;
  // Proofs at or before this time are refused (replayed): their nonces may have been forgotten
  // past the cap.
  std::int64_t floor_ms_ = 0;
  // The highest time purged as out of the window so far, by whichever check's clock: proofs at
  // or before it are refused (stale).
  std::int64_t horizon_ms_ = 0;
};

}  // namespace gwx::registry
