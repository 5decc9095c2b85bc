#include "common/codec/length_prefix.hpp"

#include <gtest/gtest.h>

#include "common/codec/line.hpp"

namespace gwx::codec {
namespace {

/// Feeds `wire` split at `split` (as two reads) to `decode`; returns every message decoded.
template <typename Decode>
std::vector<std::string> decode_split(const std::string& wire, std::size_t split, Decode decode) {
  std::string buf = wire.substr(0, split);
  std::vector<std::string> got;
  const auto drain = [&] {
    for (;;) {
      const auto r = decode(buf);
      EXPECT_NE(r.status, decode_status::error) << "split at " << split;
      if (r.status != decode_status::message) {
        return;
      }
      got.emplace_back(r.payload);
      buf.erase(0, r.consumed);
    }
  };
  drain();
  buf += wire.substr(split);
  drain();
  EXPECT_TRUE(buf.empty()) << "split at " << split;
  return got;
}

TEST(LengthPrefix, DecodesEveryByteSplit) {
  std::string wire;
  length_prefix::encode(wire, "hello");
  length_prefix::encode(wire, "");
  length_prefix::encode(wire, "world!");
  for (std::size_t split = 0; split <= wire.size(); ++split) {
    EXPECT_EQ(decode_split(wire, split,
                           [](std::string_view in) { return length_prefix::decode(in, 16); }),
              (std::vector<std::string>{"hello", "", "world!"}))
        << "split at " << split;
  }
}

TEST(LengthPrefix, MaxAcceptedMaxPlusOneRejectedBeforeBody) {
  std::string ok;
  length_prefix::encode(ok, std::string(8, 'x'));
  EXPECT_EQ(length_prefix::decode(ok, 8).status, decode_status::message);
  std::string big;
  length_prefix::encode(big, std::string(9, 'x'));
  // Only the header is needed to reject it.
  EXPECT_EQ(length_prefix::decode(std::string_view(big).substr(0, 4), 8).status,
            decode_status::error);
}

TEST(Line, DecodesEveryByteSplitAndStripsCr) {
  const std::string wire = "one\r\ntwo\n\nthree\n";
  for (std::size_t split = 0; split <= wire.size(); ++split) {
    EXPECT_EQ(decode_split(wire, split, [](std::string_view in) { return line::decode(in, 8); }),
              (std::vector<std::string>{"one", "two", "", "three"}))
        << "split at " << split;
  }
}

// Found by stream_codec_fuzz: only the CR of the terminator is dropped, so a payload that ends
// in CR cannot travel as one line (it comes back without its CR); the gateway refuses to send
// such a message to a tcp+line client (command_executor_test).
TEST(Line, OnlyTheTerminatorsCrIsDropped) {
  const auto r = line::decode("a\r\r\n", 8);
  ASSERT_EQ(r.status, decode_status::message);
  EXPECT_EQ(r.payload, "a\r");
  EXPECT_EQ(r.consumed, 4U);
  std::string wire;
  line::encode(wire, r.payload);
  EXPECT_EQ(line::decode(wire, 8).payload, "a");
}

TEST(Line, MaxAcceptedMaxPlusOneRejected) {
  EXPECT_EQ(line::decode("12345678\n", 8).status, decode_status::message);
  EXPECT_EQ(line::decode("12345678\r\n", 8).status, decode_status::message);
  EXPECT_EQ(line::decode("12345678", 8).status, decode_status::need_more);
  EXPECT_EQ(line::decode("12345678\r", 8).status, decode_status::need_more);
  EXPECT_EQ(line::decode("123456789\n", 8).status, decode_status::error);
  // Rejected as soon as the limit is passed, without waiting for a newline.
  EXPECT_EQ(line::decode("123456789", 8).status, decode_status::error);
}

}  // namespace
}  // namespace gwx::codec
