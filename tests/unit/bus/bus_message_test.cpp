#include "common/bus/bus_message.hpp"

#include <gtest/gtest.h>

#include <set>
#include <string>

#include "common/client_id.hpp"

namespace gwx::bus {
namespace {

constexpr std::size_t k_max = 1 << 20;

bus_parse_result ok(const std::string& text) {
  auto r = parse_bus_message(text, k_max);
  EXPECT_EQ(r.error, bus_error::none) << text << ": " << r.detail;
  return r;
}

bus_error error_of(const std::string& text, std::size_t max = k_max) {
  return parse_bus_message(text, max).error;
}

TEST(bus_message, send_to_uid) {
  const auto r = ok(R"({"op":"send_to_uid","uids":["alice","bob"],"data":"hi"})");
  ASSERT_EQ(r.commands.size(), 1U);
  const auto& c = r.commands[0];
  ASSERT_TRUE(c.cmd.has_send_to_uids());
  EXPECT_EQ(c.cmd.send_to_uids().uids_size(), 2);
  EXPECT_EQ(c.cmd.send_to_uids().uids(1), "bob");
  EXPECT_FALSE(c.cmd.send_to_uids().message().binary());
  EXPECT_EQ(c.text(), "hi");
  EXPECT_EQ(c.cmd.request_id(), 0U);
}

TEST(bus_message, send_to_client_binary) {
  const auto r = ok(R"({"op":"send_to_client","client_ids":["a","b"],"data_b64":"AAEC/w=="})");
  ASSERT_EQ(r.commands.size(), 1U);
  EXPECT_EQ(r.commands[0].cmd.send_to_clients().client_ids_size(), 2);
  EXPECT_TRUE(r.commands[0].cmd.send_to_clients().message().binary());
  EXPECT_EQ(r.commands[0].text(), std::string("\x00\x01\x02\xff", 4));
}

TEST(bus_message, send_to_group_and_all) {
  auto r = ok(R"({"op":"send_to_group","groups":["g"],"exclude":["x"],"data":""})");
  ASSERT_EQ(r.commands.size(), 1U);
  EXPECT_EQ(r.commands[0].cmd.send_to_groups().groups(0), "g");
  EXPECT_EQ(r.commands[0].cmd.send_to_groups().exclude_client_ids(0), "x");
  r = ok(R"({"op":"send_to_all","only":["a","b"],"exclude":["b"],"data":"x"})");
  EXPECT_EQ(r.commands[0].cmd.send_to_all().only_client_ids_size(), 2);
  EXPECT_EQ(r.commands[0].cmd.send_to_all().exclude_client_ids_size(), 1);
  r = ok(R"({"op":"send_to_all","data":"x"})");
  EXPECT_TRUE(r.commands[0].cmd.has_send_to_all());
  // An empty `only` would widen to everyone: refused.
  EXPECT_EQ(error_of(R"({"op":"send_to_all","only":[],"data":"x"})"), bus_error::bad_field);
}

TEST(bus_message, close_client_gives_one_command_per_client) {
  const auto r = ok(R"({"op":"close_client","client_ids":["a","b"],"data":"bye"})");
  ASSERT_EQ(r.commands.size(), 2U);
  for (const auto& c : r.commands) {
    EXPECT_TRUE(c.cmd.close_client().has_final_message());
    EXPECT_FALSE(c.cmd.close_client().immediate());
    EXPECT_EQ(c.text(), "bye");
  }
  EXPECT_EQ(r.commands[1].cmd.close_client().client_id(), "b");
  const auto plain = ok(R"({"op":"close_client","client_ids":["a"]})");
  EXPECT_FALSE(plain.commands[0].cmd.close_client().has_final_message());
  const auto destroy = ok(R"({"op":"destroy_client","client_ids":["a"]})");
  EXPECT_TRUE(destroy.commands[0].cmd.close_client().immediate());
}

// A close_client naming many clients holds its final message once, not once per client: 2,000
// ids with a 100 KB goodbye cost ~100 KB, not 200 MB, and the parts counted against the
// gateway's pending bound add up to the message's size. A client named twice is closed once.
TEST(bus_message, close_client_shares_one_final_message_between_its_clients) {
  const std::string goodbye(100'000, 'g');
  std::string text = R"({"op":"close_client","data":")" + goodbye + R"(","client_ids":[)";
  for (int i = 0; i < 2000; ++i) {
    text += "\"c" + std::to_string(i) + "\",";
  }
  text += R"("c7","c7"]})";
  const auto r = parse_bus_message(text, text.size());
  ASSERT_EQ(r.error, bus_error::none) << r.detail;
  ASSERT_EQ(r.commands.size(), 2000U);
  std::size_t counted = 0;
  std::set<std::string> ids;
  for (const auto& c : r.commands) {
    EXPECT_EQ(c.message.get(), r.commands[0].message.get());
    counted += c.message_bytes;
    ids.insert(c.cmd.close_client().client_id());
  }
  EXPECT_EQ(*r.commands[0].message, goodbye);
  EXPECT_EQ(counted, goodbye.size());
  EXPECT_EQ(ids.size(), 2000U);
  // A single send counts its whole message.
  const auto one = ok(R"({"op":"send_to_uid","uids":["u"],"data":"hello"})");
  EXPECT_EQ(one.commands[0].message_bytes, 5U);
}

TEST(bus_message, membership_and_session) {
  auto r = ok(R"({"op":"bind_uid","client_id":"a","uid":"alice"})");
  EXPECT_EQ(r.commands[0].cmd.bind_uid().uid(), "alice");
  r = ok(R"({"op":"unbind_uid","client_id":"a"})");
  EXPECT_EQ(r.commands[0].cmd.unbind_uid().client_id(), "a");
  r = ok(R"({"op":"join_group","client_id":"a","group":"g"})");
  EXPECT_EQ(r.commands[0].cmd.join_group().group(), "g");
  r = ok(R"({"op":"leave_group","client_id":"a","group":"g"})");
  EXPECT_EQ(r.commands[0].cmd.leave_group().group(), "g");
  r = ok(R"({"op":"ungroup","group":"g"})");
  EXPECT_EQ(r.commands[0].cmd.ungroup().group(), "g");
  r = ok(R"({"op":"update_session","client_id":"a","session":{"k":"v","gone":null}})");
  const auto& w = r.commands[0].cmd.session_write();
  EXPECT_TRUE(w.merge());
  ASSERT_EQ(w.session_size(), 1);
  EXPECT_EQ(w.session(0).key(), "k");
  EXPECT_EQ(w.session(0).value(), "v");
  ASSERT_EQ(w.erase_keys_size(), 1);
  EXPECT_EQ(w.erase_keys(0), "gone");
  r = ok(R"({"op":"set_session","client_id":"a","session":{"k":"v"}})");
  EXPECT_FALSE(r.commands[0].cmd.session_write().merge());
}

TEST(bus_message, refusals_say_why) {
  EXPECT_EQ(error_of("garbage"), bus_error::invalid_json);
  EXPECT_EQ(error_of("[1]"), bus_error::invalid_json);
  EXPECT_EQ(error_of(R"({"uids":["a"],"data":"x"})"), bus_error::unknown_op);
  EXPECT_EQ(error_of(R"({"op":7})"), bus_error::unknown_op);
  EXPECT_EQ(error_of(R"({"op":"fly"})"), bus_error::unknown_op);
  EXPECT_EQ(error_of(R"({"op":"send_to_uid","uids":"alice","data":"x"})"), bus_error::bad_field);
  EXPECT_EQ(error_of(R"({"op":"send_to_uid","uids":[1],"data":"x"})"), bus_error::bad_field);
  EXPECT_EQ(error_of(R"({"op":"send_to_uid","uids":[],"data":"x"})"), bus_error::bad_field);
  EXPECT_EQ(error_of(R"({"op":"send_to_uid","uids":["a"]})"), bus_error::bad_field);
  EXPECT_EQ(error_of(R"({"op":"send_to_uid","uids":["a"],"data":1})"), bus_error::bad_field);
  EXPECT_EQ(error_of(R"({"op":"send_to_uid","uids":["a"],"data":"x","data_b64":"eA=="})"),
            bus_error::bad_field);
  EXPECT_EQ(error_of(R"({"op":"send_to_uid","uids":["a"],"data_b64":"eA="})"),
            bus_error::bad_field);
  EXPECT_EQ(error_of(R"({"op":"send_to_uid","uids":["a"],"data":"x","typo":1})"),
            bus_error::bad_field);
  EXPECT_EQ(error_of(R"({"op":"bind_uid","client_id":"a"})"), bus_error::bad_field);
  EXPECT_EQ(error_of(R"({"op":"update_session","client_id":"a","session":{"k":1}})"),
            bus_error::bad_field);
  EXPECT_EQ(error_of(R"({"op":"set_session","client_id":"a","session":{"k":null}})"),
            bus_error::bad_field);
  EXPECT_EQ(
      error_of(R"({"op":"ungroup","group":"g","x":{"y":{"z":{"w":{"v":{"u":{"t":{"s":{}}}}}}}}})"),
      bus_error::too_deep);
}

TEST(bus_message, size_limit_is_exact) {
  const std::string msg = R"({"op":"ungroup","group":"g"})";
  EXPECT_EQ(error_of(msg, msg.size()), bus_error::none);
  EXPECT_EQ(error_of(msg, msg.size() - 1), bus_error::too_large);
}

TEST(bus_message, values_are_bounded_by_the_size_limit) {
  // One JSON value per 8 bytes of the limit: 1 MiB allows 131,072 (the object, its op, its
  // list and the data count too), so a message of tiny values costs bounded memory to parse.
  const auto uids = [](std::size_t n) {
    std::string text = R"({"op":"send_to_uid","data":"x","uids":[)";
    for (std::size_t i = 0; i < n; ++i) {
      text += i == 0 ? "\"u\"" : ",\"u\"";
    }
    return text + "]}";
  };
  constexpr std::size_t limit = 1 << 20;
  const auto fits = parse_bus_message(uids(limit / 8 - 4), limit);
  EXPECT_EQ(fits.error, bus_error::none) << fits.detail;
  const auto over = parse_bus_message(uids(limit / 8 - 3), limit);
  EXPECT_EQ(over.error, bus_error::invalid_json);
  EXPECT_NE(over.detail.find("too many values"), std::string::npos) << over.detail;
  // A small limit still allows 4,096 values.
  EXPECT_EQ(error_of(uids(1000), 8192), bus_error::none);
}

TEST(bus_message, client_routing_key_names_the_gateway) {
  const auto a1 = make_client_id("10.0.0.5", 7800, 42, (1 << 8) | 0);
  const auto a2 = make_client_id("10.0.0.5", 7800, 42, (9 << 8) | 1);
  const auto b = make_client_id("10.0.0.5", 7800, 43, (1 << 8) | 0);
  EXPECT_EQ(client_routing_key(a1), client_routing_key(a2));
  EXPECT_NE(client_routing_key(a1), client_routing_key(b));
  EXPECT_EQ(client_routing_key(a1), "client." + client_id_prefix("10.0.0.5", 7800, 42));
  EXPECT_EQ(client_routing_key("not-an-id"), "");
}

link::v2::Command parsed_with_message(const std::string& json) {
  auto r = ok(json);
  auto cmd = r.commands.at(0).cmd;
  if (cmd.has_send_to_uids()) {
    cmd.mutable_send_to_uids()->mutable_message()->set_data(*r.commands[0].message);
  } else if (cmd.has_send_to_groups()) {
    cmd.mutable_send_to_groups()->mutable_message()->set_data(*r.commands[0].message);
  } else if (cmd.has_send_to_clients()) {
    cmd.mutable_send_to_clients()->mutable_message()->set_data(*r.commands[0].message);
  } else if (cmd.has_send_to_all()) {
    cmd.mutable_send_to_all()->mutable_message()->set_data(*r.commands[0].message);
  }
  return cmd;
}

TEST(bus_message, encode_routed_splits_by_key) {
  const auto alice_gw = make_client_id("10.0.0.5", 7800, 42, 256);
  const auto other_gw = make_client_id("10.0.0.6", 7800, 7, 256);

  link::v2::Command uids;
  uids.mutable_send_to_uids()->add_uids("alice");
  uids.mutable_send_to_uids()->add_uids("bob");
  uids.mutable_send_to_uids()->mutable_message()->set_data("hi");
  auto pubs = encode_bus_command(uids, true);
  ASSERT_EQ(pubs.size(), 2U);
  EXPECT_EQ(pubs[0].routing_key, "uid.alice");
  EXPECT_EQ(pubs[0].json, R"({"op":"send_to_uid","uids":["alice"],"data":"hi"})");
  EXPECT_EQ(pubs[1].routing_key, "uid.bob");
  pubs = encode_bus_command(uids, false);
  ASSERT_EQ(pubs.size(), 1U);
  EXPECT_EQ(pubs[0].routing_key, "all");
  EXPECT_EQ(pubs[0].json, R"({"op":"send_to_uid","uids":["alice","bob"],"data":"hi"})");

  link::v2::Command clients;
  clients.mutable_send_to_clients()->add_client_ids(alice_gw);
  clients.mutable_send_to_clients()->add_client_ids(other_gw);
  clients.mutable_send_to_clients()->mutable_message()->set_data(std::string("\x00\xff", 2));
  clients.mutable_send_to_clients()->mutable_message()->set_binary(true);
  pubs = encode_bus_command(clients, true);
  ASSERT_EQ(pubs.size(), 2U);
  EXPECT_EQ(pubs[0].routing_key, client_routing_key(alice_gw));
  EXPECT_NE(pubs[0].json.find("\"data_b64\":\"AP8=\""), std::string::npos);

  link::v2::Command groups;
  groups.mutable_send_to_groups()->add_groups("g1");
  EXPECT_EQ(encode_bus_command(groups, true).at(0).routing_key, "group.g1");
  groups.mutable_send_to_groups()->add_groups("g2");
  // Two groups: one message to `all`, so a member of both gets it once.
  EXPECT_EQ(encode_bus_command(groups, true).at(0).routing_key, "all");

  link::v2::Command bind;
  bind.mutable_bind_uid()->set_client_id(other_gw);
  bind.mutable_bind_uid()->set_uid("carol");
  EXPECT_EQ(encode_bus_command(bind, true).at(0).routing_key, client_routing_key(other_gw));

  link::v2::Command query;
  query.mutable_query()->set_kind(link::v2::QUERY_KIND_ALL_UIDS);
  std::string why;
  EXPECT_TRUE(encode_bus_command(query, true, &why).empty());
  EXPECT_FALSE(why.empty());

  link::v2::Command not_utf8;
  not_utf8.mutable_send_to_uids()->add_uids("\xff");
  EXPECT_TRUE(encode_bus_command(not_utf8, false, &why).empty());
}

TEST(bus_message, encode_routed_sends_a_name_too_long_for_a_routing_key_to_all) {
  // "uid." + 251 bytes is the longest key AMQP carries; one byte more goes to `all`, which every
  // gateway binds (it does not bind a longer key), with the message naming the uid or group.
  const std::string longest(k_max_routing_key - 4, 'u');
  const std::string too_long(k_max_routing_key - 3, 'u');
  link::v2::Command uids;
  uids.mutable_send_to_uids()->add_uids(longest);
  uids.mutable_send_to_uids()->add_uids(too_long);
  uids.mutable_send_to_uids()->mutable_message()->set_data("hi");
  const auto pubs = encode_bus_command(uids, true);
  ASSERT_EQ(pubs.size(), 2U);
  EXPECT_EQ(pubs[0].routing_key, "uid." + longest);
  EXPECT_EQ(pubs[0].routing_key.size(), k_max_routing_key);
  EXPECT_EQ(pubs[1].routing_key, "all");
  EXPECT_EQ(pubs[1].json, R"({"op":"send_to_uid","uids":[")" + too_long + R"("],"data":"hi"})");

  const std::string long_group(k_max_routing_key, 'g');
  link::v2::Command group;
  group.mutable_send_to_groups()->add_groups(long_group);
  EXPECT_EQ(encode_bus_command(group, true).at(0).routing_key, "all");
  link::v2::Command ungroup;
  ungroup.mutable_ungroup()->set_group(long_group);
  const auto dissolve = encode_bus_command(ungroup, true);
  ASSERT_EQ(dissolve.size(), 1U);
  EXPECT_EQ(dissolve[0].routing_key, "all");
  EXPECT_EQ(dissolve[0].json, R"({"op":"ungroup","group":")" + long_group + R"("})");
}

TEST(bus_message, encode_then_parse_gives_the_same_command) {
  for (const std::string json : {
           R"({"op":"send_to_uid","uids":["alice"],"data":"h\"i\n"})",
           R"({"op":"send_to_group","groups":["g1","g2"],"exclude":["x"],"data_b64":"AAE="})",
           R"({"op":"send_to_all","only":["a"],"exclude":["b"],"data":"x"})",
           R"({"op":"send_to_client","client_ids":["a","b"],"data":"x"})",
       }) {
    const auto cmd = parsed_with_message(json);
    const auto pubs = encode_bus_command(cmd, false);
    ASSERT_EQ(pubs.size(), 1U);
    EXPECT_EQ(parsed_with_message(pubs[0].json).SerializeAsString(), cmd.SerializeAsString())
        << json;
  }
}

TEST(bus_message, base64) {
  for (const std::string& s :
       {std::string(), std::string("f"), std::string("fo"), std::string("foo"), std::string("foob"),
        std::string("\x00\xff", 2)}) {
    std::string back;
    ASSERT_TRUE(base64_decode(base64_encode(s), back));
    EXPECT_EQ(back, s);
  }
  EXPECT_EQ(base64_encode("foobar"), "Zm9vYmFy");
  std::string out;
  for (const char* bad : {"Zg", "Zg=", "Z===", "Zg==Zg==", "Zm9v YmFy", "Zm9v\n", "@@@@", "=Zg="}) {
    EXPECT_FALSE(base64_decode(bad, out)) << bad;
  }
}

}  // namespace
}  // namespace gwx::bus
