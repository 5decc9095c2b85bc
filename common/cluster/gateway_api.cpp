#include "common/cluster/gateway_api.hpp"

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <set>

#include "common/cluster/transport.hpp"
#include "common/link/link_entries.hpp"

namespace gwx {
namespace {

using link::v2::Command;
using link::v2::QueryKind;
using link::v2::QueryResult;
using milliseconds = std::chrono::milliseconds;
using string_list = std::vector<std::string>;

// A blocking query waits this much longer than its gather, which itself ends at the timeout.
constexpr milliseconds k_wait_grace{1000};

void set_message(link::v2::Message* out, message&& msg) {
  out->set_data(std::move(msg.data));
  out->set_binary(msg.binary);
}

std::vector<cluster::client_target> targets_of(const string_list& client_ids) {
  std::vector<cluster::client_target> out;
  out.reserve(client_ids.size());
  for (const auto& id : client_ids) {
    out.emplace_back(id);
  }
  return out;
}

// Appends the ids among `targets` that `gw` holds; returns how many.
int add_held(const cluster::gateway_view& gw, const std::vector<cluster::client_target>& targets,
             google::protobuf::RepeatedPtrField<std::string>* out) {
  int n = 0;
  for (const auto& t : targets) {
    if (gw.holds(t)) {
      out->Add()->assign(t.client_id);
      ++n;
    }
  }
  return n;
}

Command make_query(QueryKind kind, const string_list& client_ids = {}, const string_list& uids = {},
                   const string_list& groups = {}) {
  Command cmd;
  auto* q = cmd.mutable_query();
  q->set_kind(kind);
  q->mutable_client_ids()->Add(client_ids.begin(), client_ids.end());
  q->mutable_uids()->Add(uids.begin(), uids.end());
  q->mutable_groups()->Add(groups.begin(), groups.end());
  return cmd;
}

// The same command for every gateway.
cluster::command_builder everywhere(Command cmd) {
  return [cmd = std::move(cmd)](const cluster::gateway_view&, Command& out) {
    out = cmd;
    return true;
  };
}

// The command only for the gateway holding `client_id`.
cluster::command_builder at_holder(std::string_view client_id, Command cmd) {
  return [target = cluster::client_target(client_id), cmd = std::move(cmd)](
             const cluster::gateway_view& gw, Command& out) {
    if (!gw.holds(target)) {
      return false;
    }
    out = cmd;
    return true;
  };
}

// A query over some client_ids: each gateway is asked only about the ids it holds.
cluster::command_builder at_holders(const string_list& client_ids, QueryKind kind) {
  return [targets = targets_of(client_ids), kind](const cluster::gateway_view& gw, Command& out) {
    out.mutable_query()->set_kind(kind);
    return add_held(gw, targets, out.mutable_query()->mutable_client_ids()) > 0;
  };
}

void sort_unique(string_list& v) {
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
}

void append(string_list& out, const google::protobuf::RepeatedPtrField<std::string>& in) {
  out.insert(out.end(), in.begin(), in.end());
}

session_map to_session(const link::v2::Session& s) {
  return link_entries::to_map<session_map>(s.values());
}

template <typename T>
result<T> failed(std::error_code error) {
  result<T> r;
  r.error = error;
  return r;
}

// Sends the requests `build` makes, folds every reply's result into the value with `fold`,
// then lets `finish` tidy it (sort, fill absent keys) before `done` gets it.
template <typename T, typename Fold, typename Finish>
void run_query(cluster::transport& t, cluster::command_builder build, milliseconds timeout,
               gateway_api::result_handler<T> done, Fold fold, Finish finish) {
  if (t.stopped()) {
    done(failed<T>(api_errc::stopped));
    return;
  }
  t.request_each(std::move(build), timeout.count() == 0 ? t.default_timeout() : timeout,
                 [done = std::move(done), fold = std::move(fold),
                  finish = std::move(finish)](cluster::gather_result g) {
                   result<T> r;
                   r.missing_gateways = std::move(g.missing_gateways);
                   r.error = g.error;
                   if (!r.error) {
                     for (const auto& reply : g.replies) {
                       fold(r.value, reply.reply.result());
                     }
                     finish(r.value);
                   }
                   done(std::move(r));
                 });
}

template <typename T, typename Fold>
void run_query(cluster::transport& t, cluster::command_builder build, milliseconds timeout,
               gateway_api::result_handler<T> done, Fold fold) {
  run_query<T>(t, std::move(build), timeout, std::move(done), std::move(fold), [](T&) {});
}

// Runs an async query and waits for its handler. On the network thread (a handler running
// inline) the loop keeps running under the wait, when the transport can do that.
template <typename T, typename Start>
result<T> wait_for(cluster::transport& t, milliseconds timeout, Start&& start) {
  if (t.on_network_thread()) {
    if (!t.can_run_nested()) {
      return failed<T>(api_errc::would_deadlock);
    }
    // Shared: after a timeout the answer may still come, and must land somewhere.
    auto value = std::make_shared<std::optional<result<T>>>();
    start([value](result<T> r) { *value = std::move(r); });
    const auto limit = (timeout.count() == 0 ? t.default_timeout() : timeout) + k_wait_grace;
    if (!t.run_until([&value] { return value->has_value(); },
                     std::chrono::steady_clock::now() + limit)) {
      return failed<T>(api_errc::timed_out);
    }
    return std::move(**value);
  }
  struct state {
    std::mutex mutex;
    std::condition_variable ready;
    std::optional<result<T>> value;
  };
  auto s = std::make_shared<state>();
  start([s](result<T> r) {
    std::lock_guard lock(s->mutex);
    s->value = std::move(r);
    s->ready.notify_all();
  });
  const auto limit = (timeout.count() == 0 ? t.default_timeout() : timeout) + k_wait_grace;
  std::unique_lock lock(s->mutex);
  if (!s->ready.wait_for(lock, limit, [&] { return s->value.has_value(); })) {
    return failed<T>(api_errc::timed_out);
  }
  return std::move(*s->value);
}

void fold_sorted_list(string_list& out, const google::protobuf::RepeatedPtrField<std::string>& in) {
  append(out, in);
}

}  // namespace

gateway_api::gateway_api(std::shared_ptr<cluster::transport> transport)
    : transport_(std::move(transport)) {}

gateway_api::~gateway_api() = default;

milliseconds gateway_api::default_timeout() const {
  return transport_->default_timeout();
}

// ---- send ----

void gateway_api::send_to_client(std::string_view client_id, const message& msg) {
  transport_->send_to_client(client_id, msg);
}

void gateway_api::send_to_client(std::string_view client_id, message&& msg) {
  transport_->send_to_client(client_id, std::move(msg));
}

void gateway_api::send_to_clients(const string_list& client_ids, message msg) {
  if (client_ids.size() == 1) {
    send_to_client(client_ids.front(), std::move(msg));
    return;
  }
  if (client_ids.empty()) {
    return;
  }
  link::v2::Message body;
  set_message(&body, std::move(msg));
  if (transport_->takes_whole_commands()) {
    Command cmd;
    cmd.mutable_send_to_clients()->mutable_client_ids()->Add(client_ids.begin(), client_ids.end());
    *cmd.mutable_send_to_clients()->mutable_message() = std::move(body);
    transport_->send_to_all(std::move(cmd));
    return;
  }
  transport_->send_each([targets = targets_of(client_ids), body = std::move(body)](
                            const cluster::gateway_view& gw, Command& out) {
    auto* op = out.mutable_send_to_clients();
    if (add_held(gw, targets, op->mutable_client_ids()) == 0) {
      return false;
    }
    *op->mutable_message() = body;
    return true;
  });
}

void gateway_api::send_to_all(message msg, const string_list& only_client_ids,
                              const string_list& exclude_client_ids) {
  Command cmd;
  set_message(cmd.mutable_send_to_all()->mutable_message(), std::move(msg));
  if (transport_->takes_whole_commands() ||
      (only_client_ids.empty() && exclude_client_ids.empty())) {
    auto* op = cmd.mutable_send_to_all();
    op->mutable_only_client_ids()->Add(only_client_ids.begin(), only_client_ids.end());
    op->mutable_exclude_client_ids()->Add(exclude_client_ids.begin(), exclude_client_ids.end());
    transport_->send_to_all(std::move(cmd));
    return;
  }
  // Each gateway gets only the ids it holds: an empty `only` list would mean "everyone".
  transport_->send_each([only = targets_of(only_client_ids),
                         exclude = targets_of(exclude_client_ids),
                         cmd = std::move(cmd)](const cluster::gateway_view& gw, Command& out) {
    out = cmd;
    auto* op = out.mutable_send_to_all();
    if (!only.empty() && add_held(gw, only, op->mutable_only_client_ids()) == 0) {
      return false;
    }
    add_held(gw, exclude, op->mutable_exclude_client_ids());
    return true;
  });
}

void gateway_api::send_to_group(const string_list& groups, message msg,
                                const string_list& exclude_client_ids) {
  if (groups.empty()) {
    return;
  }
  Command cmd;
  auto* op = cmd.mutable_send_to_groups();
  op->mutable_groups()->Add(groups.begin(), groups.end());
  set_message(op->mutable_message(), std::move(msg));
  if (transport_->takes_whole_commands() || exclude_client_ids.empty()) {
    op->mutable_exclude_client_ids()->Add(exclude_client_ids.begin(), exclude_client_ids.end());
    transport_->send_to_all(std::move(cmd));
    return;
  }
  transport_->send_each([exclude = targets_of(exclude_client_ids), cmd = std::move(cmd)](
                            const cluster::gateway_view& gw, Command& out) {
    out = cmd;
    add_held(gw, exclude, out.mutable_send_to_groups()->mutable_exclude_client_ids());
    return true;
  });
}

void gateway_api::send_to_uid(const string_list& uids, message msg) {
  if (uids.empty()) {
    return;
  }
  Command cmd;
  auto* op = cmd.mutable_send_to_uids();
  op->mutable_uids()->Add(uids.begin(), uids.end());
  set_message(op->mutable_message(), std::move(msg));
  transport_->send_to_all(std::move(cmd));
}

// ---- membership ----

void gateway_api::bind_uid(std::string_view client_id, std::string_view uid) {
  Command cmd;
  cmd.mutable_bind_uid()->set_client_id(std::string(client_id));
  cmd.mutable_bind_uid()->set_uid(std::string(uid));
  transport_->send_to_holder(std::string(client_id), std::move(cmd));
}

void gateway_api::unbind_uid(std::string_view client_id) {
  Command cmd;
  cmd.mutable_unbind_uid()->set_client_id(std::string(client_id));
  transport_->send_to_holder(std::string(client_id), std::move(cmd));
}

void gateway_api::join_group(std::string_view client_id, std::string_view group) {
  Command cmd;
  cmd.mutable_join_group()->set_client_id(std::string(client_id));
  cmd.mutable_join_group()->set_group(std::string(group));
  transport_->send_to_holder(std::string(client_id), std::move(cmd));
}

void gateway_api::leave_group(std::string_view client_id, std::string_view group) {
  Command cmd;
  cmd.mutable_leave_group()->set_client_id(std::string(client_id));
  cmd.mutable_leave_group()->set_group(std::string(group));
  transport_->send_to_holder(std::string(client_id), std::move(cmd));
}

void gateway_api::ungroup(std::string_view group) {
  Command cmd;
  cmd.mutable_ungroup()->set_group(std::string(group));
  transport_->send_to_all(std::move(cmd));
}

// ---- session ----

void gateway_api::set_session(std::string_view client_id, const session_map& session) {
  Command cmd;
  auto* op = cmd.mutable_session_write();
  op->set_client_id(std::string(client_id));
  link_entries::append(*op->mutable_session(), session);
  transport_->send_to_holder(std::string(client_id), std::move(cmd));
}

void gateway_api::update_session(std::string_view client_id, const session_map& changes,
                                 const string_list& erase_keys) {
  Command cmd;
  auto* op = cmd.mutable_session_write();
  op->set_client_id(std::string(client_id));
  op->set_merge(true);
  link_entries::append(*op->mutable_session(), changes);
  op->mutable_erase_keys()->Add(erase_keys.begin(), erase_keys.end());
  transport_->send_to_holder(std::string(client_id), std::move(cmd));
}

// ---- close ----

void gateway_api::close_client(std::string_view client_id, std::optional<message> final_message) {
  Command cmd;
  auto* op = cmd.mutable_close_client();
  op->set_client_id(std::string(client_id));
  if (final_message) {
    set_message(op->mutable_final_message(), std::move(*final_message));
  }
  transport_->send_to_holder(std::string(client_id), std::move(cmd));
}

void gateway_api::destroy_client(std::string_view client_id) {
  Command cmd;
  cmd.mutable_close_client()->set_client_id(std::string(client_id));
  cmd.mutable_close_client()->set_immediate(true);
  transport_->send_to_holder(std::string(client_id), std::move(cmd));
}

// ---- queries ----

void gateway_api::async_is_online(std::string_view client_id, result_handler<bool> done,
                                  milliseconds timeout) {
  run_query<bool>(
      *transport_,
      at_holder(client_id, make_query(link::v2::QUERY_KIND_IS_ONLINE, {std::string(client_id)})),
      timeout, std::move(done), [id = std::string(client_id)](bool& v, const QueryResult& r) {
        v = v ||
            std::find(r.client_ids().begin(), r.client_ids().end(), id) != r.client_ids().end();
      });
}

result<bool> gateway_api::is_online(std::string_view client_id, milliseconds timeout) {
  return wait_for<bool>(*transport_, timeout, [&](result_handler<bool> h) {
    async_is_online(client_id, std::move(h), timeout);
  });
}

void gateway_api::async_is_online_batch(const string_list& client_ids,
                                        result_handler<std::map<std::string, bool>> done,
                                        milliseconds timeout) {
  run_query<std::map<std::string, bool>>(
      *transport_, at_holders(client_ids, link::v2::QUERY_KIND_IS_ONLINE), timeout, std::move(done),
      [](std::map<std::string, bool>& v, const QueryResult& r) {
        for (const auto& id : r.client_ids()) {
          v[id] = true;
        }
      },
      [ids = client_ids](std::map<std::string, bool>& v) {
        for (const auto& id : ids) {
          v.emplace(id, false);
        }
      });
}

result<std::map<std::string, bool>> gateway_api::is_online_batch(const string_list& client_ids,
                                                                 milliseconds timeout) {
  return wait_for<std::map<std::string, bool>>(*transport_, timeout, [&](auto h) {
    async_is_online_batch(client_ids, std::move(h), timeout);
  });
}

void gateway_api::async_is_uid_online(std::string_view uid, result_handler<bool> done,
                                      milliseconds timeout) {
  run_query<bool>(
      *transport_,
      everywhere(make_query(link::v2::QUERY_KIND_CLIENT_IDS_BY_UIDS, {}, {std::string(uid)})),
      timeout, std::move(done), [u = std::string(uid)](bool& v, const QueryResult& r) {
        const auto* e = link_entries::find(r.clients_by_uid(), u);
        v = v || (e != nullptr && e->value().values_size() > 0);
      });
}

result<bool> gateway_api::is_uid_online(std::string_view uid, milliseconds timeout) {
  return wait_for<bool>(*transport_, timeout,
                        [&](auto h) { async_is_uid_online(uid, std::move(h), timeout); });
}

void gateway_api::async_is_uid_online_batch(const string_list& uids,
                                            result_handler<std::map<std::string, bool>> done,
                                            milliseconds timeout) {
  run_query<std::map<std::string, bool>>(
      *transport_, everywhere(make_query(link::v2::QUERY_KIND_CLIENT_IDS_BY_UIDS, {}, uids)),
      timeout, std::move(done),
      [](std::map<std::string, bool>& v, const QueryResult& r) {
        for (const auto& e : r.clients_by_uid()) {
          if (e.value().values_size() > 0) {
            v[e.key()] = true;
          }
        }
      },
      [uids](std::map<std::string, bool>& v) {
        for (const auto& uid : uids) {
          v.emplace(uid, false);
        }
      });
}

result<std::map<std::string, bool>> gateway_api::is_uid_online_batch(const string_list& uids,
                                                                     milliseconds timeout) {
  return wait_for<std::map<std::string, bool>>(*transport_, timeout, [&](auto h) {
    async_is_uid_online_batch(uids, std::move(h), timeout);
  });
}

void gateway_api::async_get_client_ids_by_uid(std::string_view uid,
                                              result_handler<string_list> done,
                                              milliseconds timeout) {
  run_query<string_list>(
      *transport_,
      everywhere(make_query(link::v2::QUERY_KIND_CLIENT_IDS_BY_UIDS, {}, {std::string(uid)})),
      timeout, std::move(done),
      [u = std::string(uid)](string_list& v, const QueryResult& r) {
        if (const auto* e = link_entries::find(r.clients_by_uid(), u)) {
          append(v, e->value().values());
        }
      },
      sort_unique);
}

result<string_list> gateway_api::get_client_ids_by_uid(std::string_view uid, milliseconds timeout) {
  return wait_for<string_list>(*transport_, timeout, [&](auto h) {
    async_get_client_ids_by_uid(uid, std::move(h), timeout);
  });
}

void gateway_api::async_get_client_ids_by_uids(
    const string_list& uids, result_handler<std::map<std::string, string_list>> done,
    milliseconds timeout) {
  run_query<std::map<std::string, string_list>>(
      *transport_, everywhere(make_query(link::v2::QUERY_KIND_CLIENT_IDS_BY_UIDS, {}, uids)),
      timeout, std::move(done),
      [](std::map<std::string, string_list>& v, const QueryResult& r) {
        for (const auto& e : r.clients_by_uid()) {
          append(v[e.key()], e.value().values());
        }
      },
      [uids](std::map<std::string, string_list>& v) {
        for (const auto& uid : uids) {
          v[uid];
        }
        for (auto& [uid, ids] : v) {
          sort_unique(ids);
        }
      });
}

result<std::map<std::string, string_list>> gateway_api::get_client_ids_by_uids(
    const string_list& uids, milliseconds timeout) {
  return wait_for<std::map<std::string, string_list>>(*transport_, timeout, [&](auto h) {
    async_get_client_ids_by_uids(uids, std::move(h), timeout);
  });
}

void gateway_api::async_get_uid_by_client_id(std::string_view client_id,
                                             result_handler<std::string> done,
                                             milliseconds timeout) {
  run_query<std::string>(*transport_,
                         at_holder(client_id, make_query(link::v2::QUERY_KIND_UID_OF_CLIENT,
                                                         {std::string(client_id)})),
                         timeout, std::move(done), [](std::string& v, const QueryResult& r) {
                           if (r.uids_size() > 0) {
                             v = r.uids(0);
                           }
                         });
}

result<std::string> gateway_api::get_uid_by_client_id(std::string_view client_id,
                                                      milliseconds timeout) {
  return wait_for<std::string>(*transport_, timeout, [&](auto h) {
    async_get_uid_by_client_id(client_id, std::move(h), timeout);
  });
}

void gateway_api::async_get_all_client_count(result_handler<std::uint64_t> done,
                                             milliseconds timeout) {
  run_query<std::uint64_t>(
      *transport_, everywhere(make_query(link::v2::QUERY_KIND_ALL_CLIENT_COUNT)), timeout,
      std::move(done), [](std::uint64_t& v, const QueryResult& r) { v += r.count(); });
}

result<std::uint64_t> gateway_api::get_all_client_count(milliseconds timeout) {
  return wait_for<std::uint64_t>(
      *transport_, timeout, [&](auto h) { async_get_all_client_count(std::move(h), timeout); });
}

void gateway_api::async_get_client_count_by_group(std::string_view group,
                                                  result_handler<std::uint64_t> done,
                                                  milliseconds timeout) {
  run_query<std::uint64_t>(*transport_,
                           everywhere(make_query(link::v2::QUERY_KIND_CLIENT_COUNT_BY_GROUPS, {},
                                                 {}, {std::string(group)})),
                           timeout, std::move(done),
                           [g = std::string(group)](std::uint64_t& v, const QueryResult& r) {
                             if (const auto* e = link_entries::find(r.counts(), g)) {
                               v += e->value();
                             }
                           });
}

result<std::uint64_t> gateway_api::get_client_count_by_group(std::string_view group,
                                                             milliseconds timeout) {
  return wait_for<std::uint64_t>(*transport_, timeout, [&](auto h) {
    async_get_client_count_by_group(group, std::move(h), timeout);
  });
}

void gateway_api::async_get_client_count_by_groups(
    const string_list& groups, result_handler<std::map<std::string, std::uint64_t>> done,
    milliseconds timeout) {
  run_query<std::map<std::string, std::uint64_t>>(
      *transport_,
      everywhere(make_query(link::v2::QUERY_KIND_CLIENT_COUNT_BY_GROUPS, {}, {}, groups)), timeout,
      std::move(done),
      [](std::map<std::string, std::uint64_t>& v, const QueryResult& r) {
        for (const auto& e : r.counts()) {
          v[e.key()] += e.value();
        }
      },
      [groups](std::map<std::string, std::uint64_t>& v) {
        for (const auto& g : groups) {
          v.emplace(g, 0);
        }
      });
}

result<std::map<std::string, std::uint64_t>> gateway_api::get_client_count_by_groups(
    const string_list& groups, milliseconds timeout) {
  return wait_for<std::map<std::string, std::uint64_t>>(*transport_, timeout, [&](auto h) {
    async_get_client_count_by_groups(groups, std::move(h), timeout);
  });
}

void gateway_api::async_get_client_ids_by_group(std::string_view group,
                                                result_handler<string_list> done,
                                                milliseconds timeout) {
  run_query<string_list>(
      *transport_,
      everywhere(
          make_query(link::v2::QUERY_KIND_CLIENT_IDS_BY_GROUP, {}, {}, {std::string(group)})),
      timeout, std::move(done),
      [](string_list& v, const QueryResult& r) { fold_sorted_list(v, r.client_ids()); },
      sort_unique);
}

result<string_list> gateway_api::get_client_ids_by_group(std::string_view group,
                                                         milliseconds timeout) {
  return wait_for<string_list>(*transport_, timeout, [&](auto h) {
    async_get_client_ids_by_group(group, std::move(h), timeout);
  });
}

void gateway_api::async_get_client_sessions_by_group(
    std::string_view group, result_handler<std::map<std::string, session_map>> done,
    milliseconds timeout) {
  run_query<std::map<std::string, session_map>>(
      *transport_,
      everywhere(
          make_query(link::v2::QUERY_KIND_CLIENT_SESSIONS_BY_GROUP, {}, {}, {std::string(group)})),
      timeout, std::move(done), [](std::map<std::string, session_map>& v, const QueryResult& r) {
        for (const auto& [id, s] : r.sessions()) {
          v[id] = to_session(s);
        }
      });
}

result<std::map<std::string, session_map>> gateway_api::get_client_sessions_by_group(
    std::string_view group, milliseconds timeout) {
  return wait_for<std::map<std::string, session_map>>(*transport_, timeout, [&](auto h) {
    async_get_client_sessions_by_group(group, std::move(h), timeout);
  });
}

void gateway_api::async_get_all_client_ids(result_handler<string_list> done, milliseconds timeout) {
  run_query<string_list>(
      *transport_, everywhere(make_query(link::v2::QUERY_KIND_ALL_CLIENT_IDS)), timeout,
      std::move(done),
      [](string_list& v, const QueryResult& r) { fold_sorted_list(v, r.client_ids()); },
      sort_unique);
}

result<string_list> gateway_api::get_all_client_ids(milliseconds timeout) {
  return wait_for<string_list>(*transport_, timeout,
                               [&](auto h) { async_get_all_client_ids(std::move(h), timeout); });
}

void gateway_api::async_get_uids_by_group(std::string_view group, result_handler<string_list> done,
                                          milliseconds timeout) {
  run_query<string_list>(
      *transport_,
      everywhere(make_query(link::v2::QUERY_KIND_UIDS_BY_GROUP, {}, {}, {std::string(group)})),
      timeout, std::move(done),
      [](string_list& v, const QueryResult& r) { fold_sorted_list(v, r.uids()); }, sort_unique);
}

result<string_list> gateway_api::get_uids_by_group(std::string_view group, milliseconds timeout) {
  return wait_for<string_list>(
      *transport_, timeout, [&](auto h) { async_get_uids_by_group(group, std::move(h), timeout); });
}

void gateway_api::async_get_uid_count_by_group(std::string_view group,
                                               result_handler<std::uint64_t> done,
                                               milliseconds timeout) {
  // A uid may have clients on several gateways: count the distinct union, not the sum.
  async_get_uids_by_group(
      group,
      [done = std::move(done)](result<string_list> r) {
        result<std::uint64_t> out;
        out.value = r.value.size();
        out.missing_gateways = std::move(r.missing_gateways);
        out.error = r.error;
        done(std::move(out));
      },
      timeout);
}

result<std::uint64_t> gateway_api::get_uid_count_by_group(std::string_view group,
                                                          milliseconds timeout) {
  return wait_for<std::uint64_t>(*transport_, timeout, [&](auto h) {
    async_get_uid_count_by_group(group, std::move(h), timeout);
  });
}

void gateway_api::async_get_all_uids(result_handler<string_list> done, milliseconds timeout) {
  run_query<string_list>(
      *transport_, everywhere(make_query(link::v2::QUERY_KIND_ALL_UIDS)), timeout, std::move(done),
      [](string_list& v, const QueryResult& r) { fold_sorted_list(v, r.uids()); }, sort_unique);
}

result<string_list> gateway_api::get_all_uids(milliseconds timeout) {
  return wait_for<string_list>(*transport_, timeout,
                               [&](auto h) { async_get_all_uids(std::move(h), timeout); });
}

void gateway_api::async_get_all_uid_count(result_handler<std::uint64_t> done,
                                          milliseconds timeout) {
  async_get_all_uids(
      [done = std::move(done)](result<string_list> r) {
        result<std::uint64_t> out;
        out.value = r.value.size();
        out.missing_gateways = std::move(r.missing_gateways);
        out.error = r.error;
        done(std::move(out));
      },
      timeout);
}

result<std::uint64_t> gateway_api::get_all_uid_count(milliseconds timeout) {
  return wait_for<std::uint64_t>(*transport_, timeout,
                                 [&](auto h) { async_get_all_uid_count(std::move(h), timeout); });
}

void gateway_api::async_get_all_group_ids(result_handler<string_list> done, milliseconds timeout) {
  run_query<string_list>(
      *transport_, everywhere(make_query(link::v2::QUERY_KIND_ALL_GROUP_IDS)), timeout,
      std::move(done),
      [](string_list& v, const QueryResult& r) { fold_sorted_list(v, r.groups()); }, sort_unique);
}

result<string_list> gateway_api::get_all_group_ids(milliseconds timeout) {
  return wait_for<string_list>(*transport_, timeout,
                               [&](auto h) { async_get_all_group_ids(std::move(h), timeout); });
}

void gateway_api::async_get_groups_of_client(std::string_view client_id,
                                             result_handler<string_list> done,
                                             milliseconds timeout) {
  run_query<string_list>(
      *transport_,
      at_holder(client_id,
                make_query(link::v2::QUERY_KIND_GROUPS_OF_CLIENT, {std::string(client_id)})),
      timeout, std::move(done),
      [](string_list& v, const QueryResult& r) { fold_sorted_list(v, r.groups()); }, sort_unique);
}

result<string_list> gateway_api::get_groups_of_client(std::string_view client_id,
                                                      milliseconds timeout) {
  return wait_for<string_list>(*transport_, timeout, [&](auto h) {
    async_get_groups_of_client(client_id, std::move(h), timeout);
  });
}

void gateway_api::async_get_session(std::string_view client_id,
                                    result_handler<std::optional<session_map>> done,
                                    milliseconds timeout) {
  run_query<std::optional<session_map>>(
      *transport_,
      at_holder(client_id, make_query(link::v2::QUERY_KIND_SESSION, {std::string(client_id)})),
      timeout, std::move(done),
      [id = std::string(client_id)](std::optional<session_map>& v, const QueryResult& r) {
        const auto it = r.sessions().find(id);
        if (it != r.sessions().end()) {
          v = to_session(it->second);
        }
      });
}

result<std::optional<session_map>> gateway_api::get_session(std::string_view client_id,
                                                            milliseconds timeout) {
  return wait_for<std::optional<session_map>>(
      *transport_, timeout, [&](auto h) { async_get_session(client_id, std::move(h), timeout); });
}

void gateway_api::async_get_stats(result_handler<std::vector<gateway_stats>> done,
                                  milliseconds timeout) {
  run_query<std::vector<gateway_stats>>(
      *transport_, everywhere(make_query(link::v2::QUERY_KIND_STATS)), timeout, std::move(done),
      [](std::vector<gateway_stats>& v, const QueryResult& r) {
        const auto& s = r.stats();
        gateway_stats out;
        out.gateway_id = s.gateway_id();
        out.internal_address = s.internal_address();
        out.clients = s.clients();
        out.groups = s.groups();
        out.uids = s.uids();
        out.workers.assign(s.workers().begin(), s.workers().end());
        out.listeners.assign(s.listeners().begin(), s.listeners().end());
        out.messages_in = s.messages_in();
        out.messages_out = s.messages_out();
        out.threads = s.threads();
        out.events_queued = s.events_queued();
        out.events_in_flight = s.events_in_flight();
        if (s.has_bus()) {
          const auto& b = s.bus();
          out.bus = {b.url(),     b.mode(),     b.connected(), b.received(),
                     b.applied(), b.rejected(), b.dropped(),   b.bindings()};
        }
        out.events_redelivered = s.events_redelivered();
        out.events_dropped = s.events_dropped();
        out.draining_workers.assign(s.draining_workers().begin(), s.draining_workers().end());
        for (const auto& w : s.worker_links()) {
          out.worker_links.push_back(
              {w.name(), w.address(), w.draining(), w.clients(), w.events_in_flight()});
        }
        v.push_back(std::move(out));
      },
      [](std::vector<gateway_stats>& v) {
        std::sort(v.begin(), v.end(), [](const gateway_stats& a, const gateway_stats& b) {
          return a.internal_address < b.internal_address;
        });
      });
}

result<std::vector<gateway_stats>> gateway_api::get_stats(milliseconds timeout) {
  return wait_for<std::vector<gateway_stats>>(
      *transport_, timeout, [&](auto h) { async_get_stats(std::move(h), timeout); });
}

void gateway_api::async_drain_worker(std::string_view worker_name,
                                     result_handler<std::map<std::string, bool>> done,
                                     milliseconds timeout) {
  using value_t = std::map<std::string, bool>;
  if (transport_->stopped()) {
    done(failed<value_t>(api_errc::stopped));
    return;
  }
  Command cmd;
  cmd.mutable_drain_worker()->set_worker_name(std::string(worker_name));
  // A gateway without such a worker answers with an error: that is an answer, not silence.
  transport_->request_each(everywhere(std::move(cmd)),
                           timeout.count() == 0 ? transport_->default_timeout() : timeout,
                           [done = std::move(done)](cluster::gather_result g) {
                             result<value_t> r;
                             r.error = g.error;
                             for (const auto& reply : g.replies) {
                               r.value[reply.gateway_address] = true;
                             }
                             for (const auto& refused : g.errors) {
                               r.value[refused.gateway_address] = false;
                               std::erase(g.missing_gateways, refused.gateway_address);
                             }
                             r.missing_gateways = std::move(g.missing_gateways);
                             done(std::move(r));
                           });
}

result<std::map<std::string, bool>> gateway_api::drain_worker(std::string_view worker_name,
                                                              milliseconds timeout) {
  return wait_for<std::map<std::string, bool>>(*transport_, timeout, [&](auto h) {
    async_drain_worker(worker_name, std::move(h), timeout);
  });
}

}  // namespace gwx
