#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/cluster/types.hpp"

namespace gwx {

namespace cluster {
class transport;
}

/// The Gateway API: push to clients, manage uids, groups and sessions, and query presence
/// across every gateway of the cluster. Used by worker handlers, gwx::Client and gwxctl.
///
/// Thread-safe: every member may be called from any thread. Writes are asynchronous
/// (fire-and-forget) and reach each gateway in the order one thread issued them; a write for a
/// client whose gateway is not linked is dropped. Cluster-wide calls go to every gateway at
/// once; a gateway that is down or slow never holds up the others. Every query has a blocking
/// form (returns when all gateways answered or the timeout passed) and an `async_` form whose
/// handler runs on the network thread (keep it short; a blocking query there returns
/// api_errc::would_deadlock). A timeout of zero means the configured default.
class gateway_api {
 public:
  using milliseconds = std::chrono::milliseconds;
  /// Receives the result of an async query (on the network thread).
  template <typename T>
  using result_handler = std::function<void(result<T>)>;
  using string_list = std::vector<std::string>;

  /// Zero: use the configured default timeout.
  static constexpr milliseconds k_default_timeout{0};

  /// An API over `transport` (the links to the gateways, or a fake in tests).
  explicit gateway_api(std::shared_ptr<cluster::transport> transport);
  ~gateway_api();
  gateway_api(const gateway_api&) = delete;
  gateway_api& operator=(const gateway_api&) = delete;

  /// The timeout a zero timeout stands for.
  milliseconds default_timeout() const;

  // ---- send ----

  /// Sends `msg` to one client. From a handler, `msg` is encoded where it is: a message the
  /// caller keeps (e.g. the one the handler got) is not copied.
  void send_to_client(std::string_view client_id, const message& msg);
  /// Sends `msg` to one client.
  void send_to_client(std::string_view client_id, message&& msg);
  /// Sends `msg` to each of `client_ids` (one command per gateway).
  void send_to_clients(const string_list& client_ids, message msg);
  /// Sends `msg` to every client, or only to `only_client_ids` when non-empty, never to
  /// `exclude_client_ids`.
  void send_to_all(message msg, const string_list& only_client_ids = {},
                   const string_list& exclude_client_ids = {});
  /// Sends `msg` to every member of any of `groups` (once per client), except
  /// `exclude_client_ids`.
  void send_to_group(const string_list& groups, message msg,
                     const string_list& exclude_client_ids = {});
  /// Sends `msg` to every client bound to any of `uids`.
  void send_to_uid(const string_list& uids, message msg);

  // ---- membership ----

  /// Binds `client_id` to `uid` (one uid per client, many clients per uid; unbound on close).
  void bind_uid(std::string_view client_id, std::string_view uid);
  /// Removes the client's uid binding.
  void unbind_uid(std::string_view client_id);
  /// Adds the client to `group`.
  void join_group(std::string_view client_id, std::string_view group);
  /// Removes the client from `group`.
  void leave_group(std::string_view client_id, std::string_view group);
  /// Dissolves `group` on every gateway (its members stay connected).
  void ungroup(std::string_view group);

  // ---- session ----

  /// Replaces the client's session with `session`.
  void set_session(std::string_view client_id, const session_map& session);
  /// Merges `changes` into the client's session and removes `erase_keys`.
  void update_session(std::string_view client_id, const session_map& changes,
                      const string_list& erase_keys = {});

  // ---- close ----

  /// Sends `final_message` (if any), flushes, then closes the client gracefully.
  void close_client(std::string_view client_id,
                    std::optional<message> final_message = std::nullopt);
  /// Closes the client at once, dropping anything queued for it.
  void destroy_client(std::string_view client_id);

  // ---- presence and queries: blocking form, then async form ----

  /// Whether the client is connected.
  result<bool> is_online(std::string_view client_id, milliseconds timeout = k_default_timeout);
  /// Async is_online.
  void async_is_online(std::string_view client_id, result_handler<bool> done,
                       milliseconds timeout = k_default_timeout);
  /// Which of `client_ids` are connected (every id is a key).
  result<std::map<std::string, bool>> is_online_batch(const string_list& client_ids,
                                                      milliseconds timeout = k_default_timeout);
  /// Async is_online_batch.
  void async_is_online_batch(const string_list& client_ids,
                             result_handler<std::map<std::string, bool>> done,
                             milliseconds timeout = k_default_timeout);

  /// Whether any client is bound to `uid`.
  result<bool> is_uid_online(std::string_view uid, milliseconds timeout = k_default_timeout);
  /// Async is_uid_online.
  void async_is_uid_online(std::string_view uid, result_handler<bool> done,
                           milliseconds timeout = k_default_timeout);
  /// For each of `uids`, whether any client is bound to it.
  result<std::map<std::string, bool>> is_uid_online_batch(const string_list& uids,
                                                          milliseconds timeout = k_default_timeout);
  /// Async is_uid_online_batch.
  void async_is_uid_online_batch(const string_list& uids,
                                 result_handler<std::map<std::string, bool>> done,
                                 milliseconds timeout = k_default_timeout);

  /// The clients bound to `uid`, sorted.
  result<string_list> get_client_ids_by_uid(std::string_view uid,
                                            milliseconds timeout = k_default_timeout);
  /// Async get_client_ids_by_uid.
  void async_get_client_ids_by_uid(std::string_view uid, result_handler<string_list> done,
                                   milliseconds timeout = k_default_timeout);
  /// For each of `uids`, the clients bound to it, sorted (every uid is a key).
  result<std::map<std::string, string_list>> get_client_ids_by_uids(
      const string_list& uids, milliseconds timeout = k_default_timeout);
  /// Async get_client_ids_by_uids.
  void async_get_client_ids_by_uids(const string_list& uids,
                                    result_handler<std::map<std::string, string_list>> done,
                                    milliseconds timeout = k_default_timeout);

  /// The uid the client is bound to; empty when none or offline.
  result<std::string> get_uid_by_client_id(std::string_view client_id,
                                           milliseconds timeout = k_default_timeout);
  /// Async get_uid_by_client_id.
  void async_get_uid_by_client_id(std::string_view client_id, result_handler<std::string> done,
                                  milliseconds timeout = k_default_timeout);

  /// How many clients are connected to the cluster.
  result<std::uint64_t> get_all_client_count(milliseconds timeout = k_default_timeout);
  /// Async get_all_client_count.
  void async_get_all_client_count(result_handler<std::uint64_t> done,
                                  milliseconds timeout = k_default_timeout);

  /// How many clients are in `group`.
  result<std::uint64_t> get_client_count_by_group(std::string_view group,
                                                  milliseconds timeout = k_default_timeout);
  /// Async get_client_count_by_group.
  void async_get_client_count_by_group(std::string_view group, result_handler<std::uint64_t> done,
                                       milliseconds timeout = k_default_timeout);
  /// For each of `groups`, how many clients it has (every group is a key).
  result<std::map<std::string, std::uint64_t>> get_client_count_by_groups(
      const string_list& groups, milliseconds timeout = k_default_timeout);
  /// Async get_client_count_by_groups.
  void async_get_client_count_by_groups(const string_list& groups,
                                        result_handler<std::map<std::string, std::uint64_t>> done,
                                        milliseconds timeout = k_default_timeout);

  /// The members of `group`, sorted.
  result<string_list> get_client_ids_by_group(std::string_view group,
                                              milliseconds timeout = k_default_timeout);
  /// Async get_client_ids_by_group.
  void async_get_client_ids_by_group(std::string_view group, result_handler<string_list> done,
                                     milliseconds timeout = k_default_timeout);

  /// The members of `group` with their sessions.
  result<std::map<std::string, session_map>> get_client_sessions_by_group(
      std::string_view group, milliseconds timeout = k_default_timeout);
  /// Async get_client_sessions_by_group.
  void async_get_client_sessions_by_group(std::string_view group,
                                          result_handler<std::map<std::string, session_map>> done,
                                          milliseconds timeout = k_default_timeout);

  /// Every connected client, sorted.
  result<string_list> get_all_client_ids(milliseconds timeout = k_default_timeout);
  /// Async get_all_client_ids.
  void async_get_all_client_ids(result_handler<string_list> done,
                                milliseconds timeout = k_default_timeout);

  /// The distinct uids bound to members of `group`, sorted.
  result<string_list> get_uids_by_group(std::string_view group,
                                        milliseconds timeout = k_default_timeout);
  /// Async get_uids_by_group.
  void async_get_uids_by_group(std::string_view group, result_handler<string_list> done,
                               milliseconds timeout = k_default_timeout);
  /// How many distinct uids are bound to members of `group`.
  result<std::uint64_t> get_uid_count_by_group(std::string_view group,
                                               milliseconds timeout = k_default_timeout);
  /// Async get_uid_count_by_group.
  void async_get_uid_count_by_group(std::string_view group, result_handler<std::uint64_t> done,
                                    milliseconds timeout = k_default_timeout);

  /// Every bound uid, distinct and sorted.
  result<string_list> get_all_uids(milliseconds timeout = k_default_timeout);
  /// Async get_all_uids.
  void async_get_all_uids(result_handler<string_list> done,
                          milliseconds timeout = k_default_timeout);
  /// How many distinct uids are bound.
  result<std::uint64_t> get_all_uid_count(milliseconds timeout = k_default_timeout);
  /// Async get_all_uid_count.
  void async_get_all_uid_count(result_handler<std::uint64_t> done,
                               milliseconds timeout = k_default_timeout);

  /// Every group with at least one member, sorted.
  result<string_list> get_all_group_ids(milliseconds timeout = k_default_timeout);
  /// Async get_all_group_ids.
  void async_get_all_group_ids(result_handler<string_list> done,
                               milliseconds timeout = k_default_timeout);

  /// The groups the client is in, sorted.
  result<string_list> get_groups_of_client(std::string_view client_id,
                                           milliseconds timeout = k_default_timeout);
  /// Async get_groups_of_client.
  void async_get_groups_of_client(std::string_view client_id, result_handler<string_list> done,
                                  milliseconds timeout = k_default_timeout);

  /// The client's session; nullopt when the client is offline.
  result<std::optional<session_map>> get_session(std::string_view client_id,
                                                 milliseconds timeout = k_default_timeout);
  /// Async get_session.
  void async_get_session(std::string_view client_id,
                         result_handler<std::optional<session_map>> done,
                         milliseconds timeout = k_default_timeout);

  /// Each answering gateway's own figures, sorted by internal address.
  result<std::vector<gateway_stats>> get_stats(milliseconds timeout = k_default_timeout);
  /// Async get_stats.
  void async_get_stats(result_handler<std::vector<gateway_stats>> done,
                       milliseconds timeout = k_default_timeout);

  // ---- operations ----

  /// Asks every gateway to make the workers linked to it under `worker_name` drain (they stop
  /// taking events, finish, flush and exit). The value has one key per gateway that answered:
  /// true when it had such a worker linked; silent gateways are in missing_gateways.
  result<std::map<std::string, bool>> drain_worker(std::string_view worker_name,
                                                   milliseconds timeout = k_default_timeout);
  /// Async drain_worker.
  void async_drain_worker(std::string_view worker_name,
                          result_handler<std::map<std::string, bool>> done,
                          milliseconds timeout = k_default_timeout);

 protected:
  cluster::transport& transport() { return *transport_; }

 private:
  std::shared_ptr<cluster::transport> transport_;
};

}  // namespace gwx
