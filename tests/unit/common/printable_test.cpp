// printable(): names chosen by others, made fit for one log line.
#include <gtest/gtest.h>

#include "common/logging.hpp"

namespace gwx {
namespace {

TEST(Printable, PlainTextAndUtf8StayAsTheyAre) {
  EXPECT_EQ(printable("gateway-1"), "gateway-1");
  EXPECT_EQ(printable("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"),
            "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
  EXPECT_EQ(printable(""), "");
}

TEST(Printable, ANewlineCannotForgeALineNorAnEscapeReachTheTerminal) {
  const auto out = printable("x\n2026-01-01T00:00:00.000 error gwx-gateway: FORGED\x1b[31m", 200);
  EXPECT_EQ(out.find('\n'), std::string::npos);
  EXPECT_EQ(out.find('\x1b'), std::string::npos);
  EXPECT_EQ(out.substr(0, 5), "x\\x0a");
  EXPECT_NE(out.find("\\x1b[31m"), std::string::npos);
  // A backslash is escaped too, so "\x0a" in the output always stands for the byte.
  EXPECT_EQ(printable("a\\x0a"), "a\\x5cx0a");
  // C1 controls (U+009B is a one-character CSI), DEL, and bytes that are not UTF-8.
  EXPECT_EQ(printable(std::string("\xc2\x9b") + "1m"), "\\xc2\\x9b1m");
  EXPECT_EQ(printable("\x7f"), "\\x7f");
  EXPECT_EQ(printable("\xff\xe2\x82"), "\\xff\\xe2\\x82");
  EXPECT_EQ(printable("\xed\xa0\x80"), "\\xed\\xa0\\x80");  // a UTF-16 surrogate
}

TEST(Printable, LongTextIsCutBetweenCharactersAndMarked) {
  const std::string big(1 << 20, 'k');
  EXPECT_EQ(printable(big), std::string(256, 'k') + "...(1048576 bytes)");
  EXPECT_EQ(printable(std::string(8, 'a'), 8), "aaaaaaaa");
  // A character is never split: 21 three-byte characters are 63 bytes, the 22nd would pass 64.
  std::string euros;
  for (int i = 0; i < 30; ++i) {
    euros += "\xe2\x82\xac";
  }
  const auto cut = printable(euros, 64);
  EXPECT_EQ(cut, euros.substr(0, 63) + "...(90 bytes)");
  EXPECT_EQ(printable(std::string(5, '\n'), 8), "\\x0a\\x0a...(5 bytes)");
}

}  // namespace
}  // namespace gwx
