#pragma once

#include <grpcpp/support/server_callback.h>

#include <cstddef>
#include <deque>
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
};

/// One Watch stream on gRPC's callback API: it writes the snapshot pieces, then each change
/// pushed to it, with one write in flight and no thread of its own (gRPC's completion threads
/// drive it). Its backlog of changes is bounded in count and bytes: a push past either bound
/// cuts the stream (RESOURCE_EXHAUSTED) and drops the backlog; the watcher reconnects and
/// resyncs from a snapshot.
///
/// Owned by a shared_ptr (the register's list of streams) that must outlive OnDone(); never
/// calls back into its owner, so the owner may push and end under its own lock. Thread-safe.
class watch_stream final : public grpc::ServerWriteReactor<v1::WatchEvent> {
 public:
  using change_ptr = std::shared_ptr<const watch_change>;
  using snapshot_ptr = std::shared_ptr<const std::vector<v1::WatchEvent>>;

  watch_stream(std::string label, std::size_t max_events, std::size_t max_bytes);

  /// Starts writing: the snapshot pieces, then the changes pushed since construction.
  void start(snapshot_ptr snapshot);

  /// Queues a change. False when this push cut the stream for falling behind.
  bool push(const change_ptr& change);

  /// Ends the stream with `status` once the write in flight is done; later calls do nothing.
  void end(grpc::Status status);

  /// True once gRPC is done with the stream (it may be dropped then).
  bool done() const;

  /// Bytes of changes queued and not yet written.
  std::size_t backlog_bytes() const;

  /// The watcher's name and address, for logs.
  const std::string& label() const { return label_; }

  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 private:
  // Starts the next write or the finish unless one is under way; unlocks before calling gRPC.
  void pump(std::unique_lock<std::mutex>& lock);

  const std::string label_;
  const std::size_t max_events_;
  const std::size_t max_bytes_;

  mutable std::mutex mutex_;
  snapshot_ptr snapshot_;
  std::size_t next_piece_ = 0;
  std::deque<change_ptr> queue_;
  std::size_t queued_bytes_ = 0;
  // The change being written: kept alive until its write is done.
  change_ptr in_flight_;
  bool started_ = false;
  bool writing_ = false;
  bool finished_ = false;
  bool done_ = false;
  std::optional<grpc::Status> end_status_;
};

}  // namespace gwx::registry
