#include "common/bus/json.hpp"

#include <gtest/gtest.h>

#include <string>

namespace gwx::bus {
namespace {

TEST(json, parses_every_kind) {
  const auto r = json_parse(R"( {"s":"a\"b\\c\/\n\u00e9\ud83d\ude00","n":-1.5e2,"t":true,
                                "f":false,"z":null,"a":[1,[],{}],"o":{"k":"v"}} )");
  ASSERT_TRUE(r.ok) << r.error;
  const auto& v = r.value;
  ASSERT_TRUE(v.is_object());
  EXPECT_EQ(v.find("s")->as_string(), "a\"b\\c/\n\xC3\xA9\xF0\x9F\x98\x80");
  EXPECT_DOUBLE_EQ(v.find("n")->as_number(), -150);
  EXPECT_TRUE(v.find("t")->as_bool());
  EXPECT_EQ(v.find("f")->type(), json_value::kind::boolean);
  EXPECT_FALSE(v.find("f")->as_bool());
  EXPECT_EQ(v.find("z")->type(), json_value::kind::null);
  EXPECT_EQ(v.find("a")->items().size(), 3U);
  EXPECT_EQ(v.find("o")->find("k")->as_string(), "v");
  EXPECT_EQ(v.find("missing"), nullptr);
}

TEST(json, refuses_what_rfc_8259_refuses) {
  for (const std::string bad : {"",
                                " ",
                                "{",
                                "}",
                                "[1,]",
                                "{\"a\":1,}",
                                "{'a':1}",
                                "01",
                                "1.",
                                ".5",
                                "1e",
                                "+1",
                                "--1",
                                "tru",
                                "nul",
                                "\"abc",
                                "\"\\x\"",
                                "\"\\u12\"",
                                "\"\\ud800\"",
                                "\"\\udc00\"",
                                "\"\\ud800\\u0041\"",
                                "\"a\nb\"",
                                "\"\xC3\"",
                                "\"\xFF\"",
                                "{\"a\":1}x",
                                "[1 2]",
                                "{\"a\" 1}",
                                "{1:2}",
                                "/* c */ 1",
                                "{\"a\":1,\"a\":2}",
                                "NaN",
                                "[",
                                "\"\\"}) {
    EXPECT_FALSE(json_parse(bad).ok) << "accepted: " << bad;
  }
}

TEST(json, depth_limit_is_exact) {
  json_limits lim;
  lim.max_depth = 4;
  EXPECT_TRUE(json_parse("[[[[1]]]]", lim).ok);
  const auto r = json_parse("[[[[[1]]]]]", lim);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.error, "nested too deeply");
  EXPECT_TRUE(json_parse(R"({"a":{"b":{"c":{"d":1}}}})", lim).ok);
  EXPECT_FALSE(json_parse(R"({"a":{"b":{"c":{"d":{}}}}})", lim).ok);
}

TEST(json, deep_nesting_costs_no_stack) {
  // A million brackets: refused at the limit, long before the stack could suffer.
  const std::string deep(1'000'000, '[');
  const auto r = json_parse(deep);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.error, "nested too deeply");
  EXPECT_LE(r.offset, 20U);
}

TEST(json, value_count_limit) {
  json_limits lim;
  lim.max_values = 4;
  EXPECT_TRUE(json_parse("[1,2,3]", lim).ok);
  EXPECT_FALSE(json_parse("[1,2,3,4]", lim).ok);
}

// An object of `n` members "k0".."k<n-1>", then `extra` (a member text) before the '}'.
std::string object_of(std::size_t n, const std::string& extra = {}) {
  std::string text = "{";
  for (std::size_t i = 0; i < n; ++i) {
    text += (i ? ",\"k" : "\"k") + std::to_string(i) + "\":" + std::to_string(i);
  }
  return text + extra + "}";
}

TEST(json, a_repeated_key_is_refused_in_objects_of_any_size) {
  // Few members, many members, a repeat of the first key and of a key past the first few.
  const json_limits roomy{.max_depth = 16, .max_values = 1 << 20};
  for (const std::size_t n : {2U, 15U, 16U, 17U, 100'000U}) {
    const auto unique = json_parse(object_of(n), roomy);
    ASSERT_TRUE(unique.ok) << n << ": " << unique.error;
    EXPECT_EQ(unique.value.members().size(), n);
    EXPECT_EQ(unique.value.find("k" + std::to_string(n - 1))->as_number(), double(n - 1));
    for (const std::size_t repeated : {std::size_t{0}, n / 2, n - 1}) {
      const auto r = json_parse(object_of(n, ",\"k" + std::to_string(repeated) + "\":0"), roomy);
      EXPECT_FALSE(r.ok) << n << " members, k" << repeated << " repeated";
      EXPECT_EQ(r.error, "duplicate key");
    }
  }
}

TEST(json, string_literal_round_trip) {
  const std::string s = "q\"b\\n\n\r\t\x01\x1f \xC3\xA9";
  std::string lit;
  json_append_string(lit, s);
  EXPECT_EQ(lit, "\"q\\\"b\\\\n\\n\\r\\t\\u0001\\u001f \xC3\xA9\"");
  const auto r = json_parse(lit);
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.value.as_string(), s);
}

}  // namespace
}  // namespace gwx::bus
