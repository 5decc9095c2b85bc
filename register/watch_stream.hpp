#pragma once

#include <grpcpp/server_context.h>
#include <grpcpp/support/server_callback.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "gwx/registry/v1/registry.pb.h"

namespace gwx::registry {

/// One change as every Watch stream gets it: built once, shared by all their queues.
struct watch_change {
  v1::WatchEvent event;
  /// Serialized size, counted against each stream's backlog.
  std::size_t bytes = 0;
  /// Streams (plus the publisher's own share) that have not yet written or dropped it.
  mutable std::atomic<std::size_t> pending{0};
  /// Runs once, on whichever thread settles the last share: every stream is done with it.
  std::function<void()> on_settled;

  /// One stream (or the publisher) is done with the change: written, refused or dropped.
  void settle() const {
    if (pending.fetch_sub(1, std::memory_order_acq_rel) == 1 && on_settled) {
      on_settled();
    }
  }
};

/// One Watch stream on gRPC's callback API: it writes the snapshot pieces, then each change
/// pushed to it, with one write in flight and no thread of its own (gRPC's completion threads
/// drive it; the first write of a change is started by flush(), from whoever calls it). Its backlog
/// of changes is bounded in count and bytes: a push past either bound cuts the stream
/// (RESOURCE_EXHAUSTED) and drops the backlog; the watcher reconnects and resyncs from a snapshot.
/// A write waits for the watcher to read (HTTP/2 flow control), so a watcher that never reads
/// would hold the stream, its slot and the bytes of that write forever: cancel_if_stuck(), called
/// by the owner now and then, cancels a stream whose write makes no progress.
///
/// Owned by a shared_ptr (the register's list of streams) that must outlive OnDone(); never
/// calls back into its owner, so the owner may push and end under its own lock. Thread-safe.
class watch_stream final : public grpc::ServerWriteReactor<v1::WatchEvent> {
 public:
  using change_ptr = std::shared_ptr<const watch_change>;
  using snapshot_ptr = std::shared_ptr<const std::vector<v1::WatchEvent>>;
  using clock = std::chrono::steady_clock;

  /// What cancel_if_stuck() did.
  enum class stuck { no, stalled, ending };

  /// `peer`: the caller's address (host only), for the per-address cap on watchers. `context`:
  /// the call's, for cancel_if_stuck(); null outside gRPC (nothing to cancel then).
  watch_stream(std::string label, std::string peer, grpc::CallbackServerContext* context,
               std::size_t max_events, std::size_t max_bytes);

  /// Starts writing: the snapshot pieces, then the changes pushed since construction.
  void start(snapshot_ptr snapshot);

  /// Queues a change without starting its write (see flush()). False when this push cut the
  /// stream for falling behind. Settles the change exactly once: when it is written, or when
  /// the stream drops or refuses it.
  bool push(const change_ptr& change);

  /// Starts writing what push() queued (or the end it decided), unless a write is under way —
  /// then the write's completion goes on by itself. Cheap when there is nothing to do.
  void flush();

  /// Ends the stream with `status` once the write in flight is done; later calls do nothing.
  void end(grpc::Status status);

  /// Cancels the call (gRPC's TryCancel: the write in flight completes, the stream finishes,
  /// OnDone runs and the owner may drop it) when its write has been in flight for
  /// `write_timeout` (`stalled`: the watcher reads nothing), or for `end_grace` since the stream
  /// had to end (`ending`: cut for falling behind, or end() called). Otherwise, or when already
  /// cancelled, `no`.
  stuck cancel_if_stuck(clock::time_point now, clock::duration write_timeout,
                        clock::duration end_grace);

  /// True once gRPC is done with the stream (it may be dropped then).
  bool done() const;

  /// Bytes of changes queued and not yet written.
  std::size_t backlog_bytes() const;

  /// The watcher's name and address, for logs.
  const std::string& label() const { return label_; }
  /// The caller's address (host only).
  const std::string& peer() const { return peer_; }

  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 private:
  // Starts the next write or the finish unless one is under way; unlocks before calling gRPC.
  void pump(std::unique_lock<std::mutex>& lock);
  // Empties the queue; the caller settles what it returns once unlocked.
  std::deque<change_ptr> take_queue_locked();

  const std::string label_;
  const std::string peer_;
  const std::size_t max_events_;
  const std::size_t max_bytes_;
  grpc::CallbackServerContext* const context_;

  mutable std::mutex mutex_;
  snapshot_ptr snapshot_;
  std::size_t next_piece_ = 0;
  std::deque<change_ptr> queue_;
  std::size_t queued_bytes_ = 0;
  // The change being written: kept alive until its write is done.
  change_ptr in_flight_;
  bool started_ = false;
  bool writing_ = false;
  // When the write in flight started, and when end_status_ was set.
  clock::time_point write_started_;
  clock::time_point ending_since_;
  // TryCancel is under way: Finish waits for it (OnDone would free the context it uses).
  bool cancelling_ = false;
  bool cancelled_ = false;
  bool finished_ = false;
  // OnDone began: pushes are settled at once from then on.
  bool closed_ = false;
  // OnDone is over, nothing touches the stream any more: done() (the owner may drop it).
  bool done_ = false;
  std::optional<grpc::Status> end_status_;
};

}  // namespace gwx::registry
