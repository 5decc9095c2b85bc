#include "common/bus/json.hpp"

#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <unordered_set>

#include "common/codec/utf8.hpp"

namespace gwx::bus {

const json_value* json_value::find(std::string_view key) const {
  for (const auto& [k, v] : members_) {
    if (k == key) {
      return &v;
    }
  }
  return nullptr;
}

/// Recursive descent over the text; the depth limit bounds the recursion.
class json_parser {
 public:
  json_parser(std::string_view text, const json_limits& limits) : s_(text), limits_(limits) {}

  json_result run() {
    json_result r;
    skip_ws();
    if (!parse_value(r.value, 0)) {
      r.error = error_;
      r.offset = pos_;
      return r;
    }
    skip_ws();
    if (pos_ != s_.size()) {
      r.error = "unexpected data after the JSON value";
      r.offset = pos_;
      return r;
    }
    r.ok = true;
    return r;
  }

 private:
  bool fail(const char* why) {
    if (error_.empty()) {
      error_ = why;
    }
    return false;
  }

  void skip_ws() {
    while (pos_ < s_.size() &&
           (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r')) {
      ++pos_;
    }
  }

  bool literal(std::string_view word) {
    if (s_.substr(pos_, word.size()) != word) {
      return fail("invalid literal");
    }
    pos_ += word.size();
    return true;
  }

  bool parse_value(json_value& v, std::size_t depth) {
    if (++values_ > limits_.max_values) {
      return fail("too many values");
    }
    if (pos_ >= s_.size()) {
      return fail("unexpected end of input");
    }
    switch (s_[pos_]) {
      case '{':
        return parse_object(v, depth + 1);
      case '[':
        return parse_array(v, depth + 1);
      case '"':
        v.kind_ = json_value::kind::string;
        return parse_string(v.string_);
      case 't':
        v.kind_ = json_value::kind::boolean;
        v.bool_ = true;
        return literal("true");
      case 'f':
        v.kind_ = json_value::kind::boolean;
        return literal("false");
      case 'n':
        return literal("null");
      default:
        return parse_number(v);
    }
  }

  bool parse_object(json_value& v, std::size_t depth) {
    if (depth > limits_.max_depth) {
      return fail("nested too deeply");
    }
    v.kind_ = json_value::kind::object;
    ++pos_;
    // The keys so far, once the object is past a few members (a scan per key of an object with
    // 100,000 members took seconds: quadratic).
    std::unordered_set<std::string> seen;
    skip_ws();
    if (pos_ < s_.size() && s_[pos_] == '}') {
      ++pos_;
      return true;
    }
    for (;;) {
      skip_ws();
      if (pos_ >= s_.size() || s_[pos_] != '"') {
        return fail("expected a string key");
      }
      std::string key;
      if (!parse_string(key)) {
        return false;
      }
      if (!first_use_of(key, v, seen)) {
        return fail("duplicate key");
      }
      skip_ws();
      if (pos_ >= s_.size() || s_[pos_] != ':') {
        return fail("expected ':'");
      }
      ++pos_;
      skip_ws();
      v.members_.emplace_back(std::move(key), json_value{});
      if (!parse_value(v.members_.back().second, depth)) {
        return false;
      }
      skip_ws();
      if (pos_ < s_.size() && s_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (pos_ < s_.size() && s_[pos_] == '}') {
        ++pos_;
        return true;
      }
      return fail("expected ',' or '}'");
    }
  }

  // False when `key` is already a member of `object`: a scan of the members while they are
  // few, a hash set of their keys from then on.
  static bool first_use_of(const std::string& key, const json_value& object,
                           std::unordered_set<std::string>& seen) {
    constexpr std::size_t k_scan_members = 16;
    if (object.members_.size() < k_scan_members) {
      return object.find(key) == nullptr;
    }
    if (seen.empty()) {
      for (const auto& member : object.members_) {
        seen.insert(member.first);
      }
    }
    return seen.insert(key).second;
  }

  bool parse_array(json_value& v, std::size_t depth) {
    if (depth > limits_.max_depth) {
      return fail("nested too deeply");
    }
    v.kind_ = json_value::kind::array;
    ++pos_;
    skip_ws();
    if (pos_ < s_.size() && s_[pos_] == ']') {
      ++pos_;
      return true;
    }
    for (;;) {
      skip_ws();
      v.items_.emplace_back();
      if (!parse_value(v.items_.back(), depth)) {
        return false;
      }
      skip_ws();
      if (pos_ < s_.size() && s_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (pos_ < s_.size() && s_[pos_] == ']') {
        ++pos_;
        return true;
      }
      return fail("expected ',' or ']'");
    }
  }

  bool hex4(std::uint32_t& out) {
    if (s_.size() - pos_ < 4) {
      return fail("truncated \\u escape");
    }
    out = 0;
    for (int i = 0; i < 4; ++i) {
      const char c = s_[pos_++];
      out <<= 4;
      if (c >= '0' && c <= '9') {
        out |= static_cast<std::uint32_t>(c - '0');
      } else if (c >= 'a' && c <= 'f') {
        out |= static_cast<std::uint32_t>(c - 'a' + 10);
      } else if (c >= 'A' && c <= 'F') {
        out |= static_cast<std::uint32_t>(c - 'A' + 10);
      } else {
        return fail("bad hex digit in \\u escape");
      }
    }
    return true;
  }

  static void append_utf8(std::string& out, std::uint32_t cp) {
    if (cp < 0x80) {
      out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
      out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
  }

  bool parse_string(std::string& out) {
    ++pos_;  // the opening quote
    for (;;) {
      if (pos_ >= s_.size()) {
        return fail("unterminated string");
      }
      const auto c = static_cast<unsigned char>(s_[pos_]);
      if (c == '"') {
        ++pos_;
        break;
      }
      if (c < 0x20) {
        return fail("control character in string");
      }
      if (c != '\\') {
        // Runs of plain bytes are copied at once and checked as UTF-8 at the end.
        const std::size_t run = pos_;
        while (pos_ < s_.size() && s_[pos_] != '"' && s_[pos_] != '\\' &&
               static_cast<unsigned char>(s_[pos_]) >= 0x20) {
          ++pos_;
        }
        out.append(s_.substr(run, pos_ - run));
        continue;
      }
      if (++pos_ >= s_.size()) {
        return fail("unterminated string");
      }
      const char e = s_[pos_++];
      switch (e) {
        case '"':
        case '\\':
        case '/':
          out.push_back(e);
          break;
        case 'b':
          out.push_back('\b');
          break;
        case 'f':
          out.push_back('\f');
          break;
        case 'n':
          out.push_back('\n');
          break;
        case 'r':
          out.push_back('\r');
          break;
        case 't':
          out.push_back('\t');
          break;
        case 'u': {
          std::uint32_t cp = 0;
          if (!hex4(cp)) {
            return false;
          }
          if (cp >= 0xDC00 && cp <= 0xDFFF) {
            return fail("lone low surrogate");
          }
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            std::uint32_t low = 0;
            if (s_.substr(pos_, 2) != "\\u") {
              return fail("lone high surrogate");
            }
            pos_ += 2;
            if (!hex4(low)) {
              return false;
            }
            if (low < 0xDC00 || low > 0xDFFF) {
              return fail("lone high surrogate");
            }
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
          }
          append_utf8(out, cp);
          break;
        }
        default:
          return fail("bad escape");
      }
    }
    if (!codec::is_valid_utf8(out)) {
      return fail("string is not UTF-8");
    }
    return true;
  }

  bool parse_number(json_value& v) {
    const std::size_t start = pos_;
    const auto digit = [this] { return pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9'; };
    if (pos_ < s_.size() && s_[pos_] == '-') {
      ++pos_;
    }
    if (!digit()) {
      return fail("unexpected character");
    }
    if (s_[pos_] == '0') {
      ++pos_;
      if (digit()) {
        return fail("leading zero in number");
      }
    } else {
      while (digit()) {
        ++pos_;
      }
    }
    if (pos_ < s_.size() && s_[pos_] == '.') {
      ++pos_;
      if (!digit()) {
        return fail("expected a digit after '.'");
      }
      while (digit()) {
        ++pos_;
      }
    }
    if (pos_ < s_.size() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
      ++pos_;
      if (pos_ < s_.size() && (s_[pos_] == '+' || s_[pos_] == '-')) {
        ++pos_;
      }
      if (!digit()) {
        return fail("expected a digit in the exponent");
      }
      while (digit()) {
        ++pos_;
      }
    }
    // strtod needs a terminated string; numbers are short, the copy is cheap.
    const std::string text(s_.substr(start, pos_ - start));
    v.kind_ = json_value::kind::number;
    v.number_ = std::strtod(text.c_str(), nullptr);
    return true;
  }

  std::string_view s_;
  json_limits limits_;
  std::size_t pos_ = 0;
  std::size_t values_ = 0;
  std::string error_;
};

json_result json_parse(std::string_view text, const json_limits& limits) {
  return json_parser(text, limits).run();
}

void json_append_string(std::string& out, std::string_view s) {
  static constexpr char k_hex[] = "0123456789abcdef";
  out.push_back('"');
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out.push_back(k_hex[c >> 4]);
          out.push_back(k_hex[c & 0xF]);
        } else {
          out.push_back(ch);
        }
    }
  }
  out.push_back('"');
}

}  // namespace gwx::bus
