// Recursive-descent JSON parser behind json_reader.h. Strict about structure (what vramcache
// writes is well-formed; anything else means a mismatched library and must not be half-read).
#include "json_reader.h"

#include <cstdlib>
#include <limits>

namespace vramcache::torch_adapter {
namespace {

const JsonValue& NullValue() {
  static const JsonValue* null_value = new JsonValue();
  return *null_value;
}

const std::vector<JsonValue>& NoItems() {
  static const std::vector<JsonValue>* none = new std::vector<JsonValue>();
  return *none;
}

// Nesting deeper than this is not something vramcache writes; refusing it bounds the stack.
constexpr int kMaxDepth = 64;

}  // namespace

std::int64_t JsonValue::as_int() const {
  if (!integral_) return static_cast<std::int64_t>(double_);
  if (negative_) {
    return uint_ > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())
               ? std::numeric_limits<std::int64_t>::min()
               : -static_cast<std::int64_t>(uint_);
  }
  return uint_ > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())
             ? std::numeric_limits<std::int64_t>::max()
             : static_cast<std::int64_t>(uint_);
}

const std::vector<JsonValue>& JsonValue::items() const {
  return kind_ == Kind::kArray ? items_ : NoItems();
}

const JsonValue& JsonValue::operator[](std::string_view key) const {
  if (kind_ != Kind::kObject) return NullValue();
  for (std::size_t i = 0; i < keys_.size(); ++i) {
    if (keys_[i] == key) return items_[i];
  }
  return NullValue();
}

class JsonParser {
 public:
  explicit JsonParser(std::string_view text) : text_(text) {}

  bool Parse(JsonValue* out, std::string* error) {
    JsonValue value;
    if (!ParseValue(&value, 0)) {
      *error = error_;
      return false;
    }
    SkipSpace();
    if (pos_ != text_.size()) {
      *error = Where("unexpected text after the document");
      return false;
    }
    *out = std::move(value);
    return true;
  }

 private:
  std::string Where(const char* what) const {
    return std::string(what) + " at offset " + std::to_string(pos_);
  }
  bool Fail(const char* what) {
    if (error_.empty()) error_ = Where(what);
    return false;
  }

  void SkipSpace() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\n' ||
                                   text_[pos_] == '\r' || text_[pos_] == '\t')) {
      ++pos_;
    }
  }

  bool Consume(char c) {
    SkipSpace();
    if (pos_ < text_.size() && text_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }

  bool ConsumeWord(std::string_view word) {
    if (text_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }

  bool ParseValue(JsonValue* out, int depth) {
    if (depth > kMaxDepth) return Fail("nesting too deep");
    SkipSpace();
    if (pos_ >= text_.size()) return Fail("unexpected end of text");
    const char c = text_[pos_];
    if (c == '{') return ParseObject(out, depth);
    if (c == '[') return ParseArray(out, depth);
    if (c == '"') {
      out->kind_ = JsonValue::Kind::kString;
      return ParseString(&out->string_);
    }
    if (c == '-' || (c >= '0' && c <= '9')) return ParseNumber(out);
    if (ConsumeWord("true") || ConsumeWord("false")) {
      out->kind_ = JsonValue::Kind::kBool;
      out->bool_ = c == 't';
      return true;
    }
    if (ConsumeWord("null")) {
      out->kind_ = JsonValue::Kind::kNull;
      return true;
    }
    return Fail("unexpected character");
  }

  bool ParseObject(JsonValue* out, int depth) {
    ++pos_;  // '{'
    out->kind_ = JsonValue::Kind::kObject;
    if (Consume('}')) return true;
    do {
      SkipSpace();
      std::string key;
      if (pos_ >= text_.size() || text_[pos_] != '"') return Fail("expected a member name");
      if (!ParseString(&key)) return false;
      if (!Consume(':')) return Fail("expected ':'");
      JsonValue value;
      if (!ParseValue(&value, depth + 1)) return false;
      out->keys_.push_back(std::move(key));
      out->items_.push_back(std::move(value));
    } while (Consume(','));
    return Consume('}') || Fail("expected ',' or '}'");
  }

  bool ParseArray(JsonValue* out, int depth) {
    ++pos_;  // '['
    out->kind_ = JsonValue::Kind::kArray;
    if (Consume(']')) return true;
    do {
      JsonValue value;
      if (!ParseValue(&value, depth + 1)) return false;
      out->items_.push_back(std::move(value));
    } while (Consume(','));
    return Consume(']') || Fail("expected ',' or ']'");
  }

  static int HexDigit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }

  static void AppendUtf8(std::uint32_t code, std::string* out) {
    if (code < 0x80) {
      out->push_back(static_cast<char>(code));
    } else if (code < 0x800) {
      out->push_back(static_cast<char>(0xC0 | (code >> 6)));
      out->push_back(static_cast<char>(0x80 | (code & 0x3F)));
    } else if (code < 0x10000) {
      out->push_back(static_cast<char>(0xE0 | (code >> 12)));
      out->push_back(static_cast<char>(0x80 | ((code >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (code & 0x3F)));
    } else {
      out->push_back(static_cast<char>(0xF0 | (code >> 18)));
      out->push_back(static_cast<char>(0x80 | ((code >> 12) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | ((code >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (code & 0x3F)));
    }
  }

  bool ParseHex4(std::uint32_t* code) {
    if (pos_ + 4 > text_.size()) return Fail("truncated \\u escape");
    *code = 0;
    for (int i = 0; i < 4; ++i) {
      const int digit = HexDigit(text_[pos_++]);
      if (digit < 0) return Fail("bad \\u escape");
      *code = (*code << 4) | static_cast<std::uint32_t>(digit);
    }
    return true;
  }

  bool ParseString(std::string* out) {
    ++pos_;  // '"'
    while (pos_ < text_.size()) {
      const char c = text_[pos_++];
      if (c == '"') return true;
      if (c != '\\') {
        out->push_back(c);
        continue;
      }
      if (pos_ >= text_.size()) break;
      const char escaped = text_[pos_++];
      switch (escaped) {
        case '"':
        case '\\':
        case '/':
          out->push_back(escaped);
          break;
        case 'b':
          out->push_back('\b');
          break;
        case 'f':
          out->push_back('\f');
          break;
        case 'n':
          out->push_back('\n');
          break;
        case 'r':
          out->push_back('\r');
          break;
        case 't':
          out->push_back('\t');
          break;
        case 'u': {
          std::uint32_t code = 0;
          if (!ParseHex4(&code)) return false;
          // A surrogate pair spells one code point above the basic plane.
          if (code >= 0xD800 && code < 0xDC00 && ConsumeWord("\\u")) {
            std::uint32_t low = 0;
            if (!ParseHex4(&low)) return false;
            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
          }
          AppendUtf8(code, out);
          break;
        }
        default:
          return Fail("bad escape in string");
      }
    }
    return Fail("unterminated string");
  }

  bool ParseNumber(JsonValue* out) {
    const std::size_t start = pos_;
    out->kind_ = JsonValue::Kind::kNumber;
    out->negative_ = text_[pos_] == '-';
    if (out->negative_) ++pos_;
    const std::size_t digits_start = pos_;
    std::uint64_t value = 0;
    bool overflow = false;
    while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9') {
      const std::uint64_t digit = static_cast<std::uint64_t>(text_[pos_] - '0');
      if (value > (std::numeric_limits<std::uint64_t>::max() - digit) / 10) overflow = true;
      value = value * 10 + digit;
      ++pos_;
    }
    if (pos_ == digits_start) return Fail("expected digits");
    while (pos_ < text_.size() &&
           (text_[pos_] == '.' || text_[pos_] == 'e' || text_[pos_] == 'E' || text_[pos_] == '+' ||
            text_[pos_] == '-' || (text_[pos_] >= '0' && text_[pos_] <= '9'))) {
      out->integral_ = false;
      ++pos_;
    }
    const std::string spelled(text_.substr(start, pos_ - start));
    char* end = nullptr;
    out->double_ = std::strtod(spelled.c_str(), &end);
    if (end != spelled.c_str() + spelled.size()) return Fail("malformed number");
    if (overflow) out->integral_ = false;
    out->uint_ = out->integral_ ? value : 0;
    return true;
  }

  std::string_view text_;
  std::size_t pos_ = 0;
  std::string error_;
};

bool ParseJson(std::string_view text, JsonValue* out, std::string* error) {
  *out = JsonValue();
  return JsonParser(text).Parse(out, error);
}

}  // namespace vramcache::torch_adapter
