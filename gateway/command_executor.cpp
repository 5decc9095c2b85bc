#include "gateway/command_executor.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <vector>

#include "gateway/outbound.hpp"

namespace gwx::gateway {
namespace {

const std::string k_info_bound =
    "uid and session over " + std::to_string(k_max_client_info_bytes) + " bytes";

using id_list = google::protobuf::RepeatedPtrField<std::string>;

/// Each client once: a client in two of the named sets must not get the message twice, and
/// a delivery that closes its client may free the record, which must not be visited again.
void unique_targets(std::vector<client_record*>& targets) {
  std::sort(targets.begin(), targets.end());
  targets.erase(std::unique(targets.begin(), targets.end()), targets.end());
}

/// The local clients named in `ids`, each once, sorted by address.
std::vector<client_record*> named_clients(client_directory& clients, const id_list& ids) {
  std::vector<client_record*> out;
  out.reserve(static_cast<std::size_t>(ids.size()));
  for (const auto& id : ids) {
    if (auto* c = clients.find(id)) {
      out.push_back(c);
    }
  }
  unique_targets(out);
  return out;
}

/// The clients an `exclude` list names, looked up once: a recipient is then checked by address,
/// so a broadcast costs one look-up per excluded name, not a compare with every name per
/// recipient (10,000 recipients against 10,000 names would be 10^8 string compares).
class exclusion {
 public:
  exclusion(client_directory& clients, const id_list& ids) {
    if (!ids.empty()) {
      excluded_ = named_clients(clients, ids);
    }
  }
  bool excludes(const client_record* c) const {
    return !excluded_.empty() && std::binary_search(excluded_.begin(), excluded_.end(), c);
  }

 private:
  std::vector<client_record*> excluded_;
};

/// Counts a message `c`'s listener cannot frame (outbound.hpp: frameable()) as dropped.
bool counted(const client_record& c, bool framed) {
  if (!framed) {
    c.listener().metrics.messages_dropped_unframeable.inc();
  }
  return framed;
}

/// False (and counted as dropped) when `payload` cannot be framed for `c`'s listener.
bool can_frame(const client_record& c, std::string_view payload, bool binary) {
  return counted(c, frameable(c.listener().kind, payload, binary));
}

/// Queues the message for `c`, framed for its listener; true when queued.
bool deliver(client_record& c, encode_cache& cache) {
  const auto kind = c.listener().kind;
  return counted(c, cache.frameable(kind)) && c.port().send(cache.get(kind)) == send_status::ok;
}

}  // namespace

const std::string* command_target(const link::v2::Command& cmd) {
  using link::v2::Command;
  switch (cmd.op_case()) {
    case Command::kBindUid:
      return &cmd.bind_uid().client_id();
    case Command::kUnbindUid:
      return &cmd.unbind_uid().client_id();
    case Command::kJoinGroup:
      return &cmd.join_group().client_id();
    case Command::kLeaveGroup:
      return &cmd.leave_group().client_id();
    case Command::kSessionWrite:
      return &cmd.session_write().client_id();
    case Command::kCloseClient:
      return &cmd.close_client().client_id();
    case Command::kSendToClients:
      return cmd.send_to_clients().client_ids_size() == 1 ? &cmd.send_to_clients().client_ids(0)
                                                          : nullptr;
    case Command::kQuery:
      switch (cmd.query().kind()) {
        case link::v2::QUERY_KIND_GROUPS_OF_CLIENT:
        case link::v2::QUERY_KIND_SESSION:
        case link::v2::QUERY_KIND_UID_OF_CLIENT:
          return cmd.query().client_ids().empty() ? nullptr : &cmd.query().client_ids(0);
        default:
          return nullptr;
      }
    default:
      return nullptr;
  }
}

command_executor::command_executor(client_directory& clients, stats_filler fill_stats,
                                   const event_metrics& metrics)
    : clients_(clients),
      fill_stats_(std::move(fill_stats)),
      refused_uid_session_(metrics.refused_uid_session),
      refused_groups_(metrics.refused_groups) {}

void command_executor::execute(const link::v2::Command& cmd, link::v2::Reply& reply) {
  using link::v2::Command;
  std::string_view message;
  switch (cmd.op_case()) {
    case Command::kSendToClients:
      message = cmd.send_to_clients().message().data();
      break;
    case Command::kSendToAll:
      message = cmd.send_to_all().message().data();
      break;
    case Command::kSendToGroups:
      message = cmd.send_to_groups().message().data();
      break;
    case Command::kSendToUids:
      message = cmd.send_to_uids().message().data();
      break;
    case Command::kCloseClient:
      message = cmd.close_client().final_message().data();
      break;
    default:
      break;
  }
  execute(cmd, message, reply);
}

void command_executor::execute(const link::v2::Command& cmd, std::string_view message,
                               link::v2::Reply& reply) {
  using link::v2::Command;
  const auto offline = [&reply] { reply.set_error("offline"); };
  // A send may close its client (slow-client policy), which changes the indices: every
  // broadcast collects its targets first.
  std::vector<client_record*> targets;
  switch (cmd.op_case()) {
    case Command::kSendToClients: {
      const auto& op = cmd.send_to_clients();
      if (op.client_ids_size() == 1) {
        // One recipient: framed straight into its queue, no shared buffer.
        auto* c = clients_.find(op.client_ids(0));
        if (c == nullptr) {
          offline();
        } else if (!can_frame(*c, message, op.message().binary())) {
          reply.set_error(unframeable_reason(c->listener().kind));
        } else if (c->port().send_message(c->listener().kind, message, op.message().binary()) ==
                   send_status::ok) {
          ++messages_out_;
        } else {
          offline();
        }
        break;
      }
      encode_cache cache(message, op.message().binary());
      std::size_t sent = 0;
      for (auto* c : named_clients(clients_, op.client_ids())) {
        sent += deliver(*c, cache) ? 1 : 0;
      }
      messages_out_ += sent;
      if (sent == 0) {
        offline();
      }
      break;
    }
    case Command::kSendToAll: {
      const auto& op = cmd.send_to_all();
      encode_cache cache(message, op.message().binary());
      const exclusion excluded(clients_, op.exclude_client_ids());
      if (op.only_client_ids_size() > 0) {
        for (auto* c : named_clients(clients_, op.only_client_ids())) {
          if (!excluded.excludes(c)) {
            messages_out_ += deliver(*c, cache) ? 1 : 0;
          }
        }
        break;
      }
      targets.reserve(clients_.size());
      clients_.for_each([&](client_record& c) {
        if (c.addressable() && !excluded.excludes(&c)) {
          targets.push_back(&c);
        }
      });
      for (auto* c : targets) {
        messages_out_ += deliver(*c, cache) ? 1 : 0;
      }
      break;
    }
    case Command::kSendToGroups: {
      const auto& op = cmd.send_to_groups();
      encode_cache cache(message, op.message().binary());
      for (const auto& g : op.groups()) {
        if (const auto* members = clients_.group(g)) {
          targets.insert(targets.end(), members->begin(), members->end());
        }
      }
      if (op.groups_size() > 1) {
        unique_targets(targets);
      }
      const exclusion excluded(clients_, op.exclude_client_ids());
      for (auto* c : targets) {
        if (!excluded.excludes(c)) {
          messages_out_ += deliver(*c, cache) ? 1 : 0;
        }
      }
      break;
    }
    case Command::kSendToUids: {
      const auto& op = cmd.send_to_uids();
      encode_cache cache(message, op.message().binary());
      for (const auto& u : op.uids()) {
        if (const auto* members = clients_.uid(u)) {
          targets.insert(targets.end(), members->begin(), members->end());
        }
      }
      if (op.uids_size() > 1) {
        unique_targets(targets);  // a uid named twice: its clients get the message once
      }
      for (auto* c : targets) {
        messages_out_ += deliver(*c, cache) ? 1 : 0;
      }
      break;
    }
    case Command::kBindUid:
      if (auto* c = clients_.find(cmd.bind_uid().client_id())) {
        if (!clients_.bind(*c, cmd.bind_uid().uid())) {
          refuse(*c, "bind_uid", k_info_bound, refused_uid_session_, reply);
        }
      } else {
        offline();
      }
      break;
    case Command::kUnbindUid:
      if (auto* c = clients_.find(cmd.unbind_uid().client_id())) {
        clients_.unbind(*c);
      } else {
        offline();
      }
      break;
    case Command::kJoinGroup:
      if (auto* c = clients_.find(cmd.join_group().client_id())) {
        if (!cmd.join_group().group().empty() && !clients_.join(*c, cmd.join_group().group())) {
          refuse(*c, "join_group",
                 "in " + std::to_string(k_max_client_groups) + " groups or group names over " +
                     std::to_string(k_max_client_group_bytes) + " bytes",
                 refused_groups_, reply);
        }
      } else {
        offline();
      }
      break;
    case Command::kLeaveGroup:
      if (auto* c = clients_.find(cmd.leave_group().client_id())) {
        clients_.leave(*c, cmd.leave_group().group());
      } else {
        offline();
      }
      break;
    case Command::kUngroup:
      clients_.ungroup(cmd.ungroup().group());
      break;
    case Command::kSessionWrite:
      if (auto* c = clients_.find(cmd.session_write().client_id())) {
        if (!clients_.write_session(*c, cmd.session_write())) {
          refuse(*c, "session write", k_info_bound, refused_uid_session_, reply);
        }
      } else {
        offline();
      }
      break;
    case Command::kCloseClient: {
      const auto& op = cmd.close_client();
      auto* c = clients_.find(op.client_id());
      if (c == nullptr) {
        offline();
      } else if (op.immediate()) {
        c->port().destroy(close_cause::server, "destroyed by a worker");
      } else if (op.has_final_message() && can_frame(*c, message, op.final_message().binary())) {
        c->port().close_gracefully(std::make_pair(message, op.final_message().binary()));
      } else {
        c->port().close_gracefully(std::nullopt);
      }
      break;
    }
    case Command::kQuery: {
      auto& result = *reply.mutable_result();
      clients_.query(cmd.query(), result);
      if (cmd.query().kind() == link::v2::QUERY_KIND_STATS) {
        auto* stats = result.mutable_stats();
        stats->set_messages_out(messages_out_);
        if (fill_stats_) {
          fill_stats_(*stats);
        }
      }
      break;
    }
    case Command::kDrainWorker:  // handled by the link, never routed to a loop
      break;
    case Command::OP_NOT_SET:
      reply.set_error("empty command");
      break;
  }
}

void command_executor::refuse(const client_record& c, const char* what, const std::string& why,
                              const metrics::counter& counted, link::v2::Reply& reply) {
  reply.set_error(why);
  counted.inc();
  if (refusals_.count()) {
    spdlog::warn("{} for client {} refused: {} ({} refused since the last such line)", what, c.id(),
                 why, refusals_.take_pending());
  }
}

}  // namespace gwx::gateway
