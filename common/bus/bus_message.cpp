#include "common/bus/bus_message.hpp"

#include <algorithm>
#include <initializer_list>
#include <map>
#include <set>

#include "common/bus/json.hpp"
#include "common/client_id.hpp"
#include "common/codec/utf8.hpp"
#include "common/logging.hpp"

namespace gwx::bus {
namespace {

using link::v2::Command;

// One JSON value per 8 bytes of the size limit at most (a parsed value costs ~100 bytes, so a
// message of "[0,0,0,…]" would otherwise cost ~50 times its size while parsed); a name in a list
// takes 3 bytes and more, and a real one more than 8.
constexpr std::size_t k_bytes_per_value = 8;
constexpr std::size_t k_min_values = 4096;

json_limits limits_for(std::size_t max_bytes) {
  return {.max_depth = 8, .max_values = std::max(k_min_values, max_bytes / k_bytes_per_value)};
}

struct refusal {
  bus_error error;
  std::string detail;
};

/// Reads the fields of one op's object; the first problem found is kept.
class field_reader {
 public:
  explicit field_reader(const json_value& obj) : obj_(obj) {}

  bool failed() const { return !detail_.empty(); }
  const std::string& detail() const { return detail_; }

  /// Refuses any field not in `allowed` (besides "op").
  void only(std::initializer_list<std::string_view> allowed) {
    for (const auto& [key, v] : obj_.members()) {
      if (key != "op" && std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
        fail("unknown field '" + printable(key, 64) + "'");
      }
    }
  }

  const std::string* string(std::string_view key, bool required) {
    const auto* v = obj_.find(key);
    if (v == nullptr) {
      if (required) {
        fail("'" + std::string(key) + "' is required");
      }
      return nullptr;
    }
    if (!v->is_string()) {
      fail("'" + std::string(key) + "' must be a string");
      return nullptr;
    }
    return &v->as_string();
  }

  /// A list of strings; `required` also refuses an empty list.
  std::vector<std::string> strings(std::string_view key, bool required) {
    std::vector<std::string> out;
    const auto* v = obj_.find(key);
    if (v == nullptr) {
      if (required) {
        fail("'" + std::string(key) + "' is required");
      }
      return out;
    }
    if (!v->is_array()) {
      fail("'" + std::string(key) + "' must be an array of strings");
      return out;
    }
    for (const auto& item : v->items()) {
      if (!item.is_string()) {
        fail("'" + std::string(key) + "' must be an array of strings");
        return {};
      }
      out.push_back(item.as_string());
    }
    if (required && out.empty()) {
      fail("'" + std::string(key) + "' must not be empty");
    }
    return out;
  }

  /// `data` (text) or `data_b64` (binary) into `msg`/`message`; false when neither is given.
  bool data(link::v2::Message& msg, std::string& message, bool required) {
    const auto* text = obj_.find("data");
    const auto* b64 = obj_.find("data_b64");
    if (text != nullptr && b64 != nullptr) {
      fail("give 'data' or 'data_b64', not both");
      return false;
    }
    if (text == nullptr && b64 == nullptr) {
      if (required) {
        fail("'data' or 'data_b64' is required");
      }
      return false;
    }
    if (text != nullptr) {
      if (!text->is_string()) {
        fail("'data' must be a string");
        return false;
      }
      message = text->as_string();
      msg.set_binary(false);
      return true;
    }
    if (!b64->is_string() || !base64_decode(b64->as_string(), message)) {
      fail("'data_b64' must be a base64 string");
      return false;
    }
    msg.set_binary(true);
    return true;
  }

  void fail(std::string why) {
    if (detail_.empty()) {
      detail_ = std::move(why);
    }
  }

  const json_value& object() const { return obj_; }

 private:
  const json_value& obj_;
  std::string detail_;
};

template <typename Repeated>
void add_all(Repeated* field, const std::vector<std::string>& values) {
  field->Add(values.begin(), values.end());
}

/// Builds the commands of `op`; fills `r.commands` or leaves the reader failed.
void build(const std::string& op, field_reader& f, bus_parse_result& r) {
  bus_command out;
  auto& cmd = out.cmd;
  std::string message;
  if (op == "send_to_client") {
    f.only({"client_ids", "data", "data_b64"});
    auto* o = cmd.mutable_send_to_clients();
    add_all(o->mutable_client_ids(), f.strings("client_ids", true));
    f.data(*o->mutable_message(), message, true);
  } else if (op == "send_to_uid") {
    f.only({"uids", "data", "data_b64"});
    auto* o = cmd.mutable_send_to_uids();
    add_all(o->mutable_uids(), f.strings("uids", true));
    f.data(*o->mutable_message(), message, true);
  } else if (op == "send_to_group") {
    f.only({"groups", "exclude", "data", "data_b64"});
    auto* o = cmd.mutable_send_to_groups();
    add_all(o->mutable_groups(), f.strings("groups", true));
    add_all(o->mutable_exclude_client_ids(), f.strings("exclude", false));
    f.data(*o->mutable_message(), message, true);
  } else if (op == "send_to_all") {
    f.only({"only", "exclude", "data", "data_b64"});
    auto* o = cmd.mutable_send_to_all();
    const auto* only = f.object().find("only");
    add_all(o->mutable_only_client_ids(), f.strings("only", false));
    if (only != nullptr && o->only_client_ids_size() == 0 && !f.failed()) {
      // An empty "only" would mean "everyone" to the executor: refuse it rather than widen it.
      f.fail("'only' must not be empty (leave it out to reach everyone)");
    }
    add_all(o->mutable_exclude_client_ids(), f.strings("exclude", false));
    f.data(*o->mutable_message(), message, true);
  } else if (op == "close_client" || op == "destroy_client") {
    const bool destroy = op == "destroy_client";
    if (destroy) {
      f.only({"client_ids"});
    } else {
      f.only({"client_ids", "data", "data_b64"});
    }
    auto ids = f.strings("client_ids", true);
    link::v2::Message final_message;
    const bool has_final = !destroy && f.data(final_message, message, false);
    if (f.failed()) {
      return;
    }
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    // One buffer for every client named: a message naming thousands of clients must not cost
    // thousands of copies of its final message.
    const auto shared = std::make_shared<const std::string>(std::move(message));
    r.commands.reserve(ids.size());
    for (std::size_t i = 0; i < ids.size(); ++i) {
      bus_command one;
      auto* o = one.cmd.mutable_close_client();
      o->set_client_id(std::move(ids[i]));
      o->set_immediate(destroy);
      if (has_final) {
        *o->mutable_final_message() = final_message;
      }
      one.message = shared;
      one.message_bytes = shared->size() / ids.size() + (i == 0 ? shared->size() % ids.size() : 0);
      r.commands.push_back(std::move(one));
    }
    return;
  } else if (op == "bind_uid") {
    f.only({"client_id", "uid"});
    const auto* id = f.string("client_id", true);
    const auto* uid = f.string("uid", true);
    if (id != nullptr && uid != nullptr) {
      cmd.mutable_bind_uid()->set_client_id(*id);
      cmd.mutable_bind_uid()->set_uid(*uid);
    }
  } else if (op == "unbind_uid") {
    f.only({"client_id"});
    if (const auto* id = f.string("client_id", true)) {
      cmd.mutable_unbind_uid()->set_client_id(*id);
    }
  } else if (op == "join_group" || op == "leave_group") {
    f.only({"client_id", "group"});
    const auto* id = f.string("client_id", true);
    const auto* group = f.string("group", true);
    if (id != nullptr && group != nullptr) {
      if (op == "join_group") {
        cmd.mutable_join_group()->set_client_id(*id);
        cmd.mutable_join_group()->set_group(*group);
      } else {
        cmd.mutable_leave_group()->set_client_id(*id);
        cmd.mutable_leave_group()->set_group(*group);
      }
    }
  } else if (op == "ungroup") {
    f.only({"group"});
    if (const auto* group = f.string("group", true)) {
      cmd.mutable_ungroup()->set_group(*group);
    }
  } else if (op == "update_session" || op == "set_session") {
    f.only({"client_id", "session"});
    const auto* id = f.string("client_id", true);
    const auto* session = f.object().find("session");
    if (session == nullptr || !session->is_object()) {
      f.fail("'session' must be an object of strings (null erases a key)");
      return;
    }
    auto* o = cmd.mutable_session_write();
    o->set_merge(op == "update_session");
    if (id != nullptr) {
      o->set_client_id(*id);
    }
    for (const auto& [key, v] : session->members()) {
      if (v.is_string()) {
        auto* e = o->add_session();
        e->set_key(key);
        e->set_value(v.as_string());
      } else if (v.type() == json_value::kind::null && o->merge()) {
        o->add_erase_keys(key);
      } else {
        f.fail("session values must be strings (null erases a key in update_session)");
        return;
      }
    }
  } else {
    r.error = bus_error::unknown_op;
    r.detail = "unknown op '" + printable(op, 64) + "'";
    return;
  }
  if (!f.failed()) {
    out.message_bytes = message.size();
    out.message = std::make_shared<const std::string>(std::move(message));
    r.commands.push_back(std::move(out));
  }
}

// ---- encoding ----

bool utf8(std::string_view s) {
  return codec::is_valid_utf8(s);
}

template <typename List>
bool all_utf8(const List& list) {
  return std::all_of(list.begin(), list.end(), [](const auto& s) { return utf8(s); });
}

/// Writes `"key":[…]` (with a leading comma).
template <typename List>
void append_list(std::string& out, std::string_view key, const List& list) {
  out += ",\"";
  out += key;
  out += "\":[";
  bool first = true;
  for (const auto& s : list) {
    if (!first) {
      out.push_back(',');
    }
    first = false;
    json_append_string(out, s);
  }
  out.push_back(']');
}

void append_field(std::string& out, std::string_view key, std::string_view value) {
  out += ",\"";
  out += key;
  out += "\":";
  json_append_string(out, value);
}

void append_data(std::string& out, const link::v2::Message& m) {
  if (!m.binary() && utf8(m.data())) {
    append_field(out, "data", m.data());
  } else {
    append_field(out, "data_b64", base64_encode(m.data()));
  }
}

std::string begin(std::string_view op) {
  std::string out = "{\"op\":";
  json_append_string(out, op);
  return out;
}

/// Client ids grouped by the routing key of the gateway holding them (unparsable ids dropped:
/// they name no gateway).
std::map<std::string, std::vector<std::string>> by_gateway(
    const google::protobuf::RepeatedPtrField<std::string>& ids) {
  std::map<std::string, std::vector<std::string>> out;
  for (const auto& id : ids) {
    if (auto key = client_routing_key(id); !key.empty()) {
      out[key].push_back(id);
    }
  }
  return out;
}

}  // namespace

const char* bus_error_name(bus_error e) {
  switch (e) {
    case bus_error::none:
      return "none";
    case bus_error::too_large:
      return "too_large";
    case bus_error::invalid_json:
      return "invalid_json";
    case bus_error::too_deep:
      return "too_deep";
    case bus_error::unknown_op:
      return "unknown_op";
    case bus_error::bad_field:
      return "bad_field";
  }
  return "unknown";
}

bus_parse_result parse_bus_message(std::string_view text, std::size_t max_bytes) {
  bus_parse_result r;
  if (text.size() > max_bytes) {
    r.error = bus_error::too_large;
    r.detail =
        std::to_string(text.size()) + " bytes, over the limit of " + std::to_string(max_bytes);
    return r;
  }
  auto parsed = json_parse(text, limits_for(max_bytes));
  if (!parsed.ok) {
    r.error = parsed.error == "nested too deeply" ? bus_error::too_deep : bus_error::invalid_json;
    r.detail = parsed.error + " at byte " + std::to_string(parsed.offset);
    return r;
  }
  if (!parsed.value.is_object()) {
    r.error = bus_error::invalid_json;
    r.detail = "a bus message is a JSON object";
    return r;
  }
  const auto* op = parsed.value.find("op");
  if (op == nullptr || !op->is_string()) {
    r.error = bus_error::unknown_op;
    r.detail = "'op' (a string) is required";
    return r;
  }
  field_reader f(parsed.value);
  build(op->as_string(), f, r);
  if (r.error == bus_error::none && f.failed()) {
    r.error = bus_error::bad_field;
    r.detail = op->as_string() + ": " + f.detail();
    r.commands.clear();
  }
  return r;
}

std::string client_routing_key(std::string_view client_id) {
  if (!parse_client_id(client_id) || client_id.size() <= 16) {
    return {};
  }
  std::string key = "client.";
  key.append(client_id.substr(0, client_id.size() - 16));
  return key;
}

std::vector<bus_publication> encode_bus_command(const link::v2::Command& cmd, bool routed,
                                                std::string* error) {
  std::vector<bus_publication> out;
  const auto refuse = [&](const char* why) {
    if (error != nullptr) {
      *error = why;
    }
    out.clear();
    return out;
  };
  const auto one = [&](std::string key, std::string json) {
    out.push_back({std::move(key), std::move(json)});
  };
  const auto close_json = [](std::string s) { return s + "}"; };
  switch (cmd.op_case()) {
    case Command::kSendToClients: {
      const auto& o = cmd.send_to_clients();
      if (!all_utf8(o.client_ids())) {
        return refuse("a client_id is not UTF-8");
      }
      const auto emit = [&](const std::string& key, const auto& ids) {
        auto s = begin("send_to_client");
        append_list(s, "client_ids", ids);
        append_data(s, o.message());
        one(key, close_json(std::move(s)));
      };
      if (!routed) {
        emit("all", o.client_ids());
      } else {
        for (const auto& [key, ids] : by_gateway(o.client_ids())) {
          emit(key, ids);
        }
      }
      break;
    }
    case Command::kSendToAll: {
      const auto& o = cmd.send_to_all();
      if (!all_utf8(o.only_client_ids()) || !all_utf8(o.exclude_client_ids())) {
        return refuse("a client_id is not UTF-8");
      }
      const auto emit = [&](const std::string& key, const auto* only) {
        auto s = begin("send_to_all");
        if (only != nullptr) {
          append_list(s, "only", *only);
        }
        if (o.exclude_client_ids_size() > 0) {
          append_list(s, "exclude", o.exclude_client_ids());
        }
        append_data(s, o.message());
        one(key, close_json(std::move(s)));
      };
      if (o.only_client_ids_size() == 0) {
        emit("all", static_cast<const std::vector<std::string>*>(nullptr));
      } else if (!routed) {
        emit("all", &o.only_client_ids());
      } else {
        for (const auto& [key, ids] : by_gateway(o.only_client_ids())) {
          emit(key, &ids);
        }
      }
      break;
    }
    case Command::kSendToGroups: {
      const auto& o = cmd.send_to_groups();
      if (!all_utf8(o.groups()) || !all_utf8(o.exclude_client_ids())) {
        return refuse("a group or client_id is not UTF-8");
      }
      auto s = begin("send_to_group");
      append_list(s, "groups", o.groups());
      if (o.exclude_client_ids_size() > 0) {
        append_list(s, "exclude", o.exclude_client_ids());
      }
      append_data(s, o.message());
      // Several groups go to `all`: a client in two of them must get the message once.
      one(routed && o.groups_size() == 1 ? "group." + o.groups(0) : "all",
          close_json(std::move(s)));
      break;
    }
    case Command::kSendToUids: {
      const auto& o = cmd.send_to_uids();
      if (!all_utf8(o.uids())) {
        return refuse("a uid is not UTF-8");
      }
      const auto emit = [&](const std::string& key, const auto& uids) {
        auto s = begin("send_to_uid");
        append_list(s, "uids", uids);
        append_data(s, o.message());
        one(key, close_json(std::move(s)));
      };
      if (!routed) {
        emit("all", o.uids());
      } else {
        // A client has one uid: one message per uid reaches each client once.
        for (const auto& u : o.uids()) {
          emit("uid." + u, std::vector<std::string>{u});
        }
      }
      break;
    }
    case Command::kBindUid: {
      const auto& o = cmd.bind_uid();
      if (!utf8(o.client_id()) || !utf8(o.uid())) {
        return refuse("a client_id or uid is not UTF-8");
      }
      auto s = begin("bind_uid");
      append_field(s, "client_id", o.client_id());
      append_field(s, "uid", o.uid());
      one(client_routing_key(o.client_id()), close_json(std::move(s)));
      break;
    }
    case Command::kUnbindUid: {
      if (!utf8(cmd.unbind_uid().client_id())) {
        return refuse("a client_id is not UTF-8");
      }
      auto s = begin("unbind_uid");
      append_field(s, "client_id", cmd.unbind_uid().client_id());
      one(client_routing_key(cmd.unbind_uid().client_id()), close_json(std::move(s)));
      break;
    }
    case Command::kJoinGroup:
    case Command::kLeaveGroup: {
      const bool join = cmd.has_join_group();
      const auto& id = join ? cmd.join_group().client_id() : cmd.leave_group().client_id();
      const auto& group = join ? cmd.join_group().group() : cmd.leave_group().group();
      if (!utf8(id) || !utf8(group)) {
        return refuse("a client_id or group is not UTF-8");
      }
      auto s = begin(join ? "join_group" : "leave_group");
      append_field(s, "client_id", id);
      append_field(s, "group", group);
      one(client_routing_key(id), close_json(std::move(s)));
      break;
    }
    case Command::kUngroup: {
      if (!utf8(cmd.ungroup().group())) {
        return refuse("a group is not UTF-8");
      }
      auto s = begin("ungroup");
      append_field(s, "group", cmd.ungroup().group());
      one("group." + cmd.ungroup().group(), close_json(std::move(s)));
      break;
    }
    case Command::kSessionWrite: {
      const auto& o = cmd.session_write();
      if (!utf8(o.client_id()) || !all_utf8(o.erase_keys()) ||
          !std::all_of(o.session().begin(), o.session().end(),
                       [](const auto& e) { return utf8(e.key()) && utf8(e.value()); })) {
        return refuse("a session key or value is not UTF-8");
      }
      auto s = begin(o.merge() ? "update_session" : "set_session");
      append_field(s, "client_id", o.client_id());
      s += ",\"session\":{";
      bool first = true;
      for (const auto& e : o.session()) {
        if (std::find(o.erase_keys().begin(), o.erase_keys().end(), e.key()) !=
            o.erase_keys().end()) {
          continue;  // JSON keys are unique: the erase wins, as it does at the gateway
        }
        s += first ? "" : ",";
        first = false;
        json_append_string(s, e.key());
        s.push_back(':');
        json_append_string(s, e.value());
      }
      if (o.merge()) {
        for (const auto& k : std::set<std::string>(o.erase_keys().begin(), o.erase_keys().end())) {
          s += first ? "" : ",";
          first = false;
          json_append_string(s, k);
          s += ":null";
        }
      }
      s += "}";
      one(client_routing_key(o.client_id()), close_json(std::move(s)));
      break;
    }
    case Command::kCloseClient: {
      const auto& o = cmd.close_client();
      if (!utf8(o.client_id())) {
        return refuse("a client_id is not UTF-8");
      }
      auto s = begin(o.immediate() ? "destroy_client" : "close_client");
      append_list(s, "client_ids", std::vector<std::string>{o.client_id()});
      if (!o.immediate() && o.has_final_message()) {
        append_data(s, o.final_message());
      }
      one(client_routing_key(o.client_id()), close_json(std::move(s)));
      break;
    }
    default:
      return refuse("not a bus operation (queries and drains use the links)");
  }
  for (auto& p : out) {
    if (!routed || p.routing_key.size() > k_max_routing_key) {
      p.routing_key = "all";
    }
  }
  // A client-addressed command whose id names no gateway reaches nobody: nothing to publish.
  std::erase_if(out, [](const bus_publication& p) { return p.routing_key.empty(); });
  return out;
}

std::string base64_encode(std::string_view bytes) {
  static constexpr char k_alphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    const auto n = (static_cast<unsigned char>(bytes[i]) << 16) |
                   (static_cast<unsigned char>(bytes[i + 1]) << 8) |
                   static_cast<unsigned char>(bytes[i + 2]);
    out.push_back(k_alphabet[(n >> 18) & 63]);
    out.push_back(k_alphabet[(n >> 12) & 63]);
    out.push_back(k_alphabet[(n >> 6) & 63]);
    out.push_back(k_alphabet[n & 63]);
  }
  if (const auto rest = bytes.size() - i; rest > 0) {
    auto n = static_cast<unsigned char>(bytes[i]) << 16;
    if (rest == 2) {
      n |= static_cast<unsigned char>(bytes[i + 1]) << 8;
    }
    out.push_back(k_alphabet[(n >> 18) & 63]);
    out.push_back(k_alphabet[(n >> 12) & 63]);
    out.push_back(rest == 2 ? k_alphabet[(n >> 6) & 63] : '=');
    out.push_back('=');
  }
  return out;
}

bool base64_decode(std::string_view text, std::string& out) {
  const auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') {
      return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
      return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
      return c - '0' + 52;
    }
    if (c == '+') {
      return 62;
    }
    if (c == '/') {
      return 63;
    }
    return -1;
  };
  out.clear();
  if (text.size() % 4 != 0) {
    return false;
  }
  out.reserve(text.size() / 4 * 3);
  for (std::size_t i = 0; i < text.size(); i += 4) {
    const bool last = i + 4 == text.size();
    int v[4];
    int pad = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = text[i + k];
      if (c == '=' && last && k >= 2) {
        v[k] = 0;
        ++pad;
        continue;
      }
      if (pad > 0) {
        return false;  // data after padding
      }
      v[k] = value(c);
      if (v[k] < 0) {
        return false;
      }
    }
    const unsigned n = (v[0] << 18) | (v[1] << 12) | (v[2] << 6) | v[3];
    out.push_back(static_cast<char>((n >> 16) & 0xFF));
    if (pad < 2) {
      out.push_back(static_cast<char>((n >> 8) & 0xFF));
    }
    if (pad < 1) {
      out.push_back(static_cast<char>(n & 0xFF));
    }
  }
  return true;
}

}  // namespace gwx::bus
