#include "common/codec/utf8.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

namespace gwx::codec {
namespace {

std::string bytes(std::initializer_list<int> list) {
  std::string s;
  for (int b : list) {
    s.push_back(static_cast<char>(b));
  }
  return s;
}

// An independent oracle: decodes by the textbook rule, then checks the code point.
bool reference_valid(const std::string& s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t len;
    std::uint32_t cp;
    if (c < 0x80) {
      len = 1;
      cp = c;
    } else if ((c & 0xe0) == 0xc0) {
      len = 2;
      cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      len = 3;
      cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > s.size()) {
      return false;
    }
    for (std::size_t k = 1; k < len; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xc0) != 0x80) {
        return false;
      }
      cp = (cp << 6) | (cc & 0x3f);
    }
    static constexpr std::uint32_t k_min[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < k_min[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
      return false;
    }
    i += len;
  }
  return true;
}

const std::vector<std::string>& valid_vectors() {
  static const std::vector<std::string> v = {
      "",
      "Hello-\xc2\xb5@\xc3\x9f\xc3\xb6\xc3\xa4\xc3\xbc\xc3\xa0\xc3\xa1-UTF-8!!",
      "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5",  // "kosme" in Greek
      bytes({0x00}),
      bytes({0x7f}),
      bytes({0xc2, 0x80}),              // U+0080
      bytes({0xdf, 0xbf}),              // U+07FF
      bytes({0xe0, 0xa0, 0x80}),        // U+0800
      bytes({0xed, 0x9f, 0xbf}),        // U+D7FF, last before the surrogates
      bytes({0xee, 0x80, 0x80}),        // U+E000, first after them
      bytes({0xef, 0xbf, 0xbd}),        // U+FFFD
      bytes({0xef, 0xbf, 0xbf}),        // U+FFFF
      bytes({0xf0, 0x90, 0x80, 0x80}),  // U+10000
      bytes({0xf4, 0x8f, 0xbf, 0xbf}),  // U+10FFFF
      "\xf0\x9f\x98\x80 emoji and plain ASCII long enough to take the eight-byte path",
  };
  return v;
}

const std::vector<std::string>& invalid_vectors() {
  static const std::vector<std::string> v = {
      bytes({0x80}),                                // lone continuation
      bytes({0xbf}),                                // lone continuation
      bytes({0xc0, 0xaf}),                          // overlong '/'
      bytes({0xc1, 0xbf}),                          // overlong U+007F
      bytes({0xe0, 0x80, 0xaf}),                    // overlong '/'
      bytes({0xe0, 0x9f, 0xbf}),                    // overlong U+07FF
      bytes({0xf0, 0x80, 0x80, 0xaf}),              // overlong '/'
      bytes({0xf0, 0x8f, 0xbf, 0xbf}),              // overlong U+FFFF
      bytes({0xed, 0xa0, 0x80}),                    // U+D800
      bytes({0xed, 0xbf, 0xbf}),                    // U+DFFF
      bytes({0xed, 0xa0, 0x80, 0xed, 0xb0, 0x80}),  // surrogate pair
      bytes({0xf4, 0x90, 0x80, 0x80}),              // U+110000
      bytes({0xf5, 0x80, 0x80, 0x80}),              // beyond the range
      bytes({0xf8, 0x88, 0x80, 0x80, 0x80}),        // 5-byte form
      bytes({0xfc, 0x84, 0x80, 0x80, 0x80, 0x80}),  // 6-byte form
      bytes({0xfe}),
      bytes({0xff}),
      bytes({0xc2, 0x41}),              // lead byte followed by ASCII
      bytes({0xe1, 0x80, 0x41}),        // three-byte sequence cut by ASCII
      bytes({0xf0, 0x90, 0x80, 0xc0}),  // four-byte sequence cut by a lead byte
      "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64",
  };
  return v;
}

TEST(Utf8, AcceptsValidVectors) {
  for (const auto& s : valid_vectors()) {
    EXPECT_TRUE(is_valid_utf8(s)) << testing::PrintToString(s);
    EXPECT_TRUE(reference_valid(s));
  }
}

TEST(Utf8, RejectsInvalidVectors) {
  for (const auto& s : invalid_vectors()) {
    EXPECT_FALSE(is_valid_utf8(s)) << testing::PrintToString(s);
    EXPECT_FALSE(reference_valid(s));
    utf8_validator v;
    EXPECT_FALSE(v.feed(s)) << testing::PrintToString(s);
    EXPECT_TRUE(v.failed());
  }
}

TEST(Utf8, TruncatedSequencesArePendingNotFailed) {
  for (const auto& s : {bytes({0xce}), bytes({0xe1, 0xbd}), bytes({0xf0, 0x90, 0x80}),
                        std::string("abc") + bytes({0xf4, 0x8f, 0xbf})}) {
    utf8_validator v;
    EXPECT_TRUE(v.feed(s)) << testing::PrintToString(s);
    EXPECT_FALSE(v.complete());
    EXPECT_FALSE(v.failed());
    EXPECT_FALSE(is_valid_utf8(s));
  }
}

TEST(Utf8, ValidSplitAtEveryByteAcrossFeeds) {
  for (const auto& s : valid_vectors()) {
    for (std::size_t split = 0; split <= s.size(); ++split) {
      utf8_validator v;
      EXPECT_TRUE(v.feed(std::string_view(s).substr(0, split)));
      EXPECT_TRUE(v.feed(std::string_view(s).substr(split)));
      EXPECT_TRUE(v.complete()) << testing::PrintToString(s) << " split at " << split;
    }
    utf8_validator one_by_one;
    for (char c : s) {
      ASSERT_TRUE(one_by_one.feed(std::string_view(&c, 1)));
    }
    EXPECT_TRUE(one_by_one.complete());
  }
}

TEST(Utf8, FailsFastAtTheFirstImpossibleByte) {
  // "kosme" then a surrogate: the byte after 0xED (0xA0) is where it becomes impossible.
  const std::string s = "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80";
  utf8_validator v;
  std::size_t failed_at = s.size();
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (!v.feed(std::string_view(s).substr(i, 1))) {
      failed_at = i;
      break;
    }
  }
  EXPECT_EQ(failed_at, 12u);
  // Sticky: valid input afterwards does not revive it.
  EXPECT_FALSE(v.feed("abc"));
  EXPECT_FALSE(v.complete());
  v.reset();
  EXPECT_TRUE(v.feed("abc"));
  EXPECT_TRUE(v.complete());
}

TEST(Utf8, BadByteFoundAtEveryPositionOfLongAscii) {
  // Exercises the eight-bytes-at-a-time ASCII path at every alignment.
  for (std::size_t pos = 0; pos < 40; ++pos) {
    std::string s(41, 'a');
    s[pos] = '\xff';
    EXPECT_FALSE(is_valid_utf8(s)) << pos;
    std::string t(41, 'a');
    t.replace(pos, 2, "\xc3\xa9");
    EXPECT_TRUE(is_valid_utf8(t)) << pos;
  }
}

TEST(Utf8, AgreesWithReferenceOnAllShortSequences) {
  std::string s(2, '\0');
  for (int a = 0; a < 256; ++a) {
    for (int b = 0; b < 256; ++b) {
      s[0] = static_cast<char>(a);
      s[1] = static_cast<char>(b);
      ASSERT_EQ(is_valid_utf8(s), reference_valid(s)) << a << " " << b;
    }
  }
  std::string t(3, '\0');
  for (int a = 0xc0; a < 256; ++a) {
    for (int b = 0; b < 256; ++b) {
      for (int c = 0x70; c < 0xd0; ++c) {
        t[0] = static_cast<char>(a);
        t[1] = static_cast<char>(b);
        t[2] = static_cast<char>(c);
        ASSERT_EQ(is_valid_utf8(t), reference_valid(t)) << a << " " << b << " " << c;
      }
    }
  }
  std::string u(4, '\0');
  for (int a = 0xe0; a < 256; ++a) {
    for (int b = 0x70; b < 0xd0; ++b) {
      for (int c : {0x41, 0x7f, 0x80, 0xbf, 0xc0}) {
        for (int d : {0x41, 0x80, 0xbf, 0xc0}) {
          u[0] = static_cast<char>(a);
          u[1] = static_cast<char>(b);
          u[2] = static_cast<char>(c);
          u[3] = static_cast<char>(d);
          ASSERT_EQ(is_valid_utf8(u), reference_valid(u)) << a << " " << b << " " << c << " " << d;
        }
      }
    }
  }
}

}  // namespace
}  // namespace gwx::codec
