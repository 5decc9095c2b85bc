// log_text: what a peer chose, made safe for one log line.
#include <gtest/gtest.h>

#include <string>

#include "common/logging.hpp"

namespace gwx {
namespace {

TEST(LogText, PrintableAsciiIsKeptAsItIs) {
  EXPECT_EQ(log_text("gw-1 at 10.0.0.5:7700 (ws://x/?a=b&c=\"d\")"),
            "gw-1 at 10.0.0.5:7700 (ws://x/?a=b&c=\"d\")");
  EXPECT_EQ(log_text(""), "");
}

TEST(LogText, ControlCharactersBackslashAndHighBytesAreEscaped) {
  EXPECT_EQ(log_text("a\nb"), "a\\x0ab");
  EXPECT_EQ(log_text("x\r\x1b[31my\x7f"), "x\\x0d\\x1b[31my\\x7f");
  EXPECT_EQ(log_text(std::string("n\0u", 3)), "n\\x00u");
  EXPECT_EQ(log_text("\xc3\xa9\xff"), "\\xc3\\xa9\\xff");
  // The backslash too: an escape in the output always comes from the escaping.
  EXPECT_EQ(log_text("a\\x0ab"), "a\\x5cx0ab");
}

TEST(LogText, LongTextIsCutAtTheBoundWithItsSize) {
  EXPECT_EQ(log_text(std::string(8, 'a'), 8), "aaaaaaaa");
  EXPECT_EQ(log_text(std::string(9, 'a'), 8), "aaaaaaaa...(9 bytes)");
  EXPECT_EQ(log_text(std::string(4'000'000, 'N')).size(),
            512 + std::string("...(4000000 bytes)").size());
  EXPECT_EQ(log_text("\n\n\n", 2), "\\x0a\\x0a...(3 bytes)");
}

}  // namespace
}  // namespace gwx
