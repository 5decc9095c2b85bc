#pragma once

#include <asio/buffer.hpp>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace gwx::net {

/// Bytes shared by every recipient of a broadcast (encoded once).
using shared_bytes = std::shared_ptr<const std::string>;

/// What happened to bytes offered to a send queue.
enum class send_status : std::uint8_t {
  ok,             ///< queued
  backpressured,  ///< queued, but the queue is past its high-water mark: stop producing
  dropped,        ///< not queued: the cap would be exceeded
};

/// The outgoing side of one stream connection (client socket or internal link): a queue of
/// byte segments, bounded by the memory they hold — not just their wire bytes — with one write
/// in flight. Small unicast sends are coalesced into owned segments (no allocation per
/// message once warm); shared buffers are queued by reference.
///
/// Accounting: an owned segment counts its capacity, a shared one its size plus a fixed
/// overhead (control block and slot), so a flood of tiny broadcasts is bounded like a flood of
/// big ones. Sans-I/O: the owner does the socket writes (gather(), then written()).
/// Not thread-safe.
class send_queue {
 public:
  /// Per-segment cost counted on top of a shared buffer's size.
  static constexpr std::size_t k_shared_overhead = 96;
  /// Owned segments grow up to this size before a new one starts.
  static constexpr std::size_t k_coalesce_limit = 64 * 1024;
  /// Most buffers handed to one gathered write.
  static constexpr std::size_t k_max_gather = 64;

  /// `cap`: most memory held (0: unbounded); `high_water`: above it pushes report
  /// backpressured (0: cap / 2).
  explicit send_queue(std::size_t cap = 0, std::size_t high_water = 0);

  /// Queues a copy of `bytes` (coalesced with what is queued and not being written).
  send_status push(std::string_view bytes);
  /// Queues a shared buffer by reference.
  send_status push(shared_bytes bytes);
  /// Lets the caller encode straight into the queue: returns the string to append to (at most
  /// `max_bytes` will be appended); call commit() after appending. nullptr when the cap would
  /// be exceeded.
  std::string* reserve(std::size_t max_bytes);
  /// Accounts what was appended to the string reserve() returned.
  send_status commit();

  /// Queues `bytes` even past the cap (a close frame, a handshake answer).
  void force(std::string_view bytes);
  /// Puts `bytes`, of which the first `written` were already written, before everything queued,
  /// even past the cap (bytes accepted earlier and kept elsewhere until now). The buffer is
  /// queued by reference when nothing of it was written, else its rest is copied. Not while a
  /// write is in flight.
  void prepend(const shared_bytes& bytes, std::size_t written = 0);

  /// True when nothing is queued or being written.
  bool empty() const { return segments_.empty(); }
  /// True while a gathered write is in flight.
  bool writing() const { return writing_ > 0; }
  /// Memory held, as counted against the cap.
  std::size_t memory() const { return memory_; }
  /// Wire bytes queued (including those being written).
  std::size_t bytes() const { return bytes_; }
  std::size_t cap() const { return cap_; }
  bool over_high_water() const { return memory_ > high_water_; }

  /// Buffers for the next write (empty when nothing is queued); marks them in flight.
  const std::vector<asio::const_buffer>& gather();
  /// What the last gather() returned, while that write is in flight.
  const std::vector<asio::const_buffer>& in_flight() const { return gathered_; }
  /// The write of everything gather() returned completed.
  void written();
  /// Drops everything queued (the connection is going away).
  void clear();
  /// Returns memory held by idle owned capacity (after a burst); spare storage of at most
  /// `keep` bytes is kept for the next segment (and, when empty, the segment lists).
  void shrink(std::size_t keep = 0);
  /// New owned segments start at `bytes` at least (default 64), and a spare buffer up to four
  /// times that is reused for them: a queue that batches many small sends (a link) then fills
  /// one buffer per write instead of growing a small one by doubling every time.
  void set_min_segment(std::size_t bytes);
  /// Changes the cap and high-water mark (as the constructor computes them) of an empty queue,
  /// for reuse by another connection.
  void reset(std::size_t cap, std::size_t high_water = 0);

 private:
  struct segment {
    shared_bytes shared;
    std::string owned;
    std::string_view view() const {
      return shared ? std::string_view(*shared) : std::string_view(owned);
    }
    std::size_t cost() const {
      return shared ? shared->size() + k_shared_overhead : owned.capacity() + sizeof(segment);
    }
  };
  send_status status_after_push() const;
  segment& owned_tail(std::size_t extra);

  std::size_t cap_ = 0;
  std::size_t high_water_ = 0;
  std::vector<segment> segments_;
  std::vector<asio::const_buffer> gathered_;
  std::size_t writing_ = 0;  ///< segments at the front in flight
  std::size_t memory_ = 0;
  std::size_t bytes_ = 0;
  std::size_t reserved_cost_ = 0;
  std::size_t reserved_size_ = 0;
  std::string spare_;  ///< a written owned segment's storage, reused by the next one
  std::size_t min_segment_;
};

}  // namespace gwx::net
