#include "worker/apps/commands_app.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <functional>
#include <map>

namespace gwx::apps {
namespace {

using string_list = std::vector<std::string>;

// The words of one command: word() takes the next space-separated word, text() everything
// after the single space that follows the last word taken (spaces kept).
class command_reader {
 public:
  explicit command_reader(std::string_view line) : rest_(line) {}

  std::string_view word() {
    while (!rest_.empty() && rest_.front() == ' ') {
      rest_.remove_prefix(1);
    }
    const auto end = std::min(rest_.find(' '), rest_.size());
    const auto w = rest_.substr(0, end);
    rest_.remove_prefix(end);
    return w;
  }

  std::string_view text() {
    if (!rest_.empty() && rest_.front() == ' ') {
      rest_.remove_prefix(1);
    }
    const auto t = rest_;
    rest_ = {};
    return t;
  }

 private:
  std::string_view rest_;
};

// Thrown for a command that cannot run; its text becomes "error <text>".
struct usage_error {
  std::string reason;
};

std::string_view need_word(command_reader& in, std::string_view what) {
  const auto w = in.word();
  if (w.empty()) {
    throw usage_error{"missing " + std::string(what)};
  }
  return w;
}

std::string_view need_text(command_reader& in) {
  const auto t = in.text();
  if (t.empty()) {
    throw usage_error{"missing text"};
  }
  return t;
}

string_list split_commas(std::string_view s) {
  string_list out;
  while (!s.empty()) {
    const auto comma = std::min(s.find(','), s.size());
    if (comma > 0) {
      out.emplace_back(s.substr(0, comma));
    }
    s.remove_prefix(std::min(comma + 1, s.size()));
  }
  return out;
}

// Sessions as "k=v k=v", sorted by key.
std::string format_session(const session_map& s) {
  std::string out;
  for (const auto& [k, v] : s) {
    out += (out.empty() ? "" : " ") + k + "=" + v;
  }
  return out;
}

std::string reply(std::string_view verb, const string_list& items) {
  std::string out(verb);
  for (const auto& item : items) {
    out += " " + item;
  }
  return out;
}

std::string reply(std::string_view verb, std::string_view value) {
  return value.empty() ? std::string(verb) : std::string(verb) + " " + std::string(value);
}

std::string reply_flag(std::string_view verb, bool value) {
  return std::string(verb) + (value ? " 1" : " 0");
}

// Unwraps a query result: a query that could not run becomes an error reply; one that some
// gateways missed still answers with what the others said.
template <typename T>
T value_of(result<T> r, std::string_view verb) {
  if (r.error) {
    throw usage_error{std::string(verb) + ": " + r.error.message()};
  }
  if (!r.missing_gateways.empty()) {
    spdlog::debug("commands: '{}' got no answer from {} gateway(s)", verb,
                  r.missing_gateways.size());
  }
  return std::move(r.value);
}

session_map parse_pairs(command_reader& in) {
  session_map out;
  for (auto w = in.word(); !w.empty(); w = in.word()) {
    const auto eq = w.find('=');
    if (eq == std::string_view::npos || eq == 0) {
      throw usage_error{"expected key=value, got '" + std::string(w) + "'"};
    }
    out[std::string(w.substr(0, eq))] = std::string(w.substr(eq + 1));
  }
  return out;
}

using command_fn = std::function<std::string(context&, command_reader&)>;

const std::map<std::string, command_fn, std::less<>>& command_table() {
  static const std::map<std::string, command_fn, std::less<>> table = {
      // ---- about the sender ----
      {"id", [](context& ctx, command_reader&) { return "id " + ctx.client_id(); }},
      {"echo", [](context&, command_reader& in) { return std::string(need_text(in)); }},
      {"join",
       [](context& ctx, command_reader& in) {
         ctx.api().join_group(ctx.client_id(), need_word(in, "group"));
         return std::string("ok");
       }},
      {"leave",
       [](context& ctx, command_reader& in) {
         ctx.api().leave_group(ctx.client_id(), need_word(in, "group"));
         return std::string("ok");
       }},
      {"bind",
       [](context& ctx, command_reader& in) {
         ctx.api().bind_uid(ctx.client_id(), need_word(in, "uid"));
         return std::string("ok");
       }},
      {"unbind",
       [](context& ctx, command_reader&) {
         ctx.api().unbind_uid(ctx.client_id());
         return std::string("ok");
       }},
      {"set",
       [](context& ctx, command_reader& in) {
         const std::string key(need_word(in, "key"));
         ctx.session()[key] = std::string(need_text(in));
         return std::string("ok");
       }},
      {"unset",
       [](context& ctx, command_reader& in) {
         ctx.session().erase(std::string(need_word(in, "key")));
         return std::string("ok");
       }},
      {"get",
       [](context& ctx, command_reader& in) {
         const auto it = ctx.session().find(std::string(need_word(in, "key")));
         return reply("value", it == ctx.session().end() ? std::string() : it->second);
       }},
      {"set-session",
       [](context& ctx, command_reader& in) {
         ctx.session() = parse_pairs(in);
         return std::string("ok");
       }},
      // ---- sending ----
      {"to-client",
       [](context& ctx, command_reader& in) {
         const auto id = need_word(in, "client id");
         ctx.api().send_to_client(id, std::string(need_text(in)));
         return std::string("ok");
       }},
      {"to-clients",
       [](context& ctx, command_reader& in) {
         const auto ids = split_commas(need_word(in, "client ids"));
         ctx.api().send_to_clients(ids, std::string(need_text(in)));
         return std::string("ok");
       }},
      {"to-uid",
       [](context& ctx, command_reader& in) {
         const auto uids = split_commas(need_word(in, "uid"));
         ctx.api().send_to_uid(uids, std::string(need_text(in)));
         return std::string("ok");
       }},
      {"to-group",
       [](context& ctx, command_reader& in) {
         const auto groups = split_commas(need_word(in, "group"));
         ctx.api().send_to_group(groups, std::string(need_text(in)));
         return std::string("ok");
       }},
      {"to-group-except",
       [](context& ctx, command_reader& in) {
         const auto groups = split_commas(need_word(in, "group"));
         const auto exclude = split_commas(need_word(in, "client ids"));
         ctx.api().send_to_group(groups, std::string(need_text(in)), exclude);
         return std::string("ok");
       }},
      {"to-all",
       [](context& ctx, command_reader& in) {
         ctx.api().send_to_all(std::string(need_text(in)));
         return std::string("ok");
       }},
      {"to-all-except",
       [](context& ctx, command_reader& in) {
         const auto exclude = split_commas(need_word(in, "client ids"));
         ctx.api().send_to_all(std::string(need_text(in)), {}, exclude);
         return std::string("ok");
       }},
      // ---- acting on other clients ----
      {"ungroup",
       [](context& ctx, command_reader& in) {
         ctx.api().ungroup(need_word(in, "group"));
         return std::string("ok");
       }},
      {"kick",
       [](context& ctx, command_reader& in) {
         const auto id = need_word(in, "client id");
         const auto text = in.text();
         ctx.api().close_client(
             id, text.empty() ? std::nullopt : std::optional<message>(std::string(text)));
         return std::string("ok");
       }},
      {"destroy",
       [](context& ctx, command_reader& in) {
         ctx.api().destroy_client(need_word(in, "client id"));
         return std::string("ok");
       }},
      {"bind-other",
       [](context& ctx, command_reader& in) {
         const auto id = need_word(in, "client id");
         ctx.api().bind_uid(id, need_word(in, "uid"));
         return std::string("ok");
       }},
      {"update-session",
       [](context& ctx, command_reader& in) {
         const auto id = need_word(in, "client id");
         ctx.api().update_session(id, parse_pairs(in));
         return std::string("ok");
       }},
      // ---- queries ----
      {"online",
       [](context& ctx, command_reader& in) {
         return reply_flag("online",
                           value_of(ctx.api().is_online(need_word(in, "client id")), "online"));
       }},
      {"uid-online",
       [](context& ctx, command_reader& in) {
         return reply_flag("uid-online",
                           value_of(ctx.api().is_uid_online(need_word(in, "uid")), "uid-online"));
       }},
      {"uids-online",
       [](context& ctx, command_reader& in) {
         string_list uids;
         for (auto w = in.word(); !w.empty(); w = in.word()) {
           uids.emplace_back(w);
         }
         if (uids.empty()) {
           throw usage_error{"missing uid"};
         }
         string_list items;
         for (const auto& [uid, on] :
              value_of(ctx.api().is_uid_online_batch(uids), "uids-online")) {
           items.push_back(uid + (on ? "=1" : "=0"));
         }
         return reply("uids-online", items);
       }},
      {"count",
       [](context& ctx, command_reader&) {
         return "count " + std::to_string(value_of(ctx.api().get_all_client_count(), "count"));
       }},
      {"group-count",
       [](context& ctx, command_reader& in) {
         return "group-count " +
                std::to_string(value_of(ctx.api().get_client_count_by_group(need_word(in, "group")),
                                        "group-count"));
       }},
      {"group-counts",
       [](context& ctx, command_reader& in) {
         string_list groups;
         for (auto w = in.word(); !w.empty(); w = in.word()) {
           groups.emplace_back(w);
         }
         if (groups.empty()) {
           throw usage_error{"missing group"};
         }
         string_list items;
         for (const auto& [g, n] :
              value_of(ctx.api().get_client_count_by_groups(groups), "group-counts")) {
           items.push_back(g + "=" + std::to_string(n));
         }
         return reply("group-counts", items);
       }},
      {"groups",
       [](context& ctx, command_reader& in) {
         const auto id = in.word();
         return reply("groups", id.empty()
                                    ? value_of(ctx.api().get_all_group_ids(), "groups")
                                    : value_of(ctx.api().get_groups_of_client(id), "groups"));
       }},
      {"uid-clients",
       [](context& ctx, command_reader& in) {
         return reply("uid-clients", value_of(ctx.api().get_client_ids_by_uid(need_word(in, "uid")),
                                              "uid-clients"));
       }},
      {"group-clients",
       [](context& ctx, command_reader& in) {
         return reply(
             "group-clients",
             value_of(ctx.api().get_client_ids_by_group(need_word(in, "group")), "group-clients"));
       }},
      {"group-sessions",
       [](context& ctx, command_reader& in) {
         string_list items;
         for (const auto& [id, s] :
              value_of(ctx.api().get_client_sessions_by_group(need_word(in, "group")),
                       "group-sessions")) {
           std::string item = id + "{";
           for (const auto& [k, v] : s) {
             item += (item.back() == '{' ? "" : ",") + k + "=" + v;
           }
           items.push_back(item + "}");
         }
         return reply("group-sessions", items);
       }},
      {"group-uids",
       [](context& ctx, command_reader& in) {
         return reply("group-uids",
                      value_of(ctx.api().get_uids_by_group(need_word(in, "group")), "group-uids"));
       }},
      {"group-uid-count",
       [](context& ctx, command_reader& in) {
         return "group-uid-count " +
                std::to_string(value_of(ctx.api().get_uid_count_by_group(need_word(in, "group")),
                                        "group-uid-count"));
       }},
      {"clients",
       [](context& ctx, command_reader&) {
         return reply("clients", value_of(ctx.api().get_all_client_ids(), "clients"));
       }},
      {"uids",
       [](context& ctx, command_reader&) {
         return reply("uids", value_of(ctx.api().get_all_uids(), "uids"));
       }},
      {"uid-count",
       [](context& ctx, command_reader&) {
         return "uid-count " + std::to_string(value_of(ctx.api().get_all_uid_count(), "uid-count"));
       }},
      {"uid-of",
       [](context& ctx, command_reader& in) {
         return reply("uid-of", value_of(ctx.api().get_uid_by_client_id(need_word(in, "client id")),
                                         "uid-of"));
       }},
      {"session",
       [](context& ctx, command_reader& in) {
         const auto id = in.word();
         if (id.empty()) {
           return reply("session", format_session(ctx.session()));
         }
         const auto s = value_of(ctx.api().get_session(id), "session");
         return reply("session", s ? format_session(*s) : std::string());
       }},
  };
  return table;
}

}  // namespace

std::string commands_app::execute(context& ctx, std::string_view line) {
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) {
    line.remove_suffix(1);
  }
  command_reader in(line);
  const auto verb = in.word();
  if (verb.empty()) {
    return "error empty command";
  }
  if (verb == "help") {
    string_list verbs;
    for (const auto& [name, fn] : command_table()) {
      verbs.push_back(name);
    }
    return reply("help", verbs);
  }
  const auto& table = command_table();
  const auto it = table.find(verb);
  if (it == table.end()) {
    return "error unknown command '" + std::string(verb) + "' (try help)";
  }
  try {
    return it->second(ctx, in);
  } catch (const usage_error& e) {
    return "error " + std::string(verb) + ": " + e.reason;
  }
}

connect_decision commands_app::on_websocket_connect(context& /*ctx*/,
                                                    const websocket_request& request) {
  // `refuse=STATUS` in the upgrade's query: refused with that status (to try out `ask=1`).
  std::string_view query = request.query;
  while (!query.empty()) {
    const auto amp = std::min(query.find('&'), query.size());
    const auto pair = query.substr(0, amp);
    query.remove_prefix(std::min(amp + 1, query.size()));
    constexpr std::string_view k_key = "refuse=";
    if (pair.substr(0, k_key.size()) != k_key) {
      continue;
    }
    const auto value = pair.substr(k_key.size());
    std::uint32_t status = 0;
    const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), status);
    if (ec == std::errc{} && end == value.data() + value.size() && status >= 400 && status <= 599) {
      return connect_decision::reject(status, "refused by the commands app");
    }
  }
  return connect_decision::accept();
}

void commands_app::on_connect(context& ctx) {
  const auto& tls = ctx.tls();
  if (!tls) {
    return;
  }
  ctx.session()["tls_version"] = tls->version;
  if (tls->certificate) {
    ctx.session()["tls_subject"] = tls->certificate->subject;
    std::string sans;
    for (const auto& san : tls->certificate->sans) {
      sans += (sans.empty() ? "" : ",") + san;
    }
    ctx.session()["tls_sans"] = sans;
  }
}

void commands_app::on_message(context& ctx, const message& msg) {
  // Answered in the command's kind: a binary command's answer may carry bytes that are not
  // UTF-8 (a client-chosen uid, group or session value), which a text message must not.
  ctx.send_to_current_client(message(execute(ctx, msg.data), msg.binary));
}

}  // namespace gwx::apps
