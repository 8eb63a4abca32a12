// Splits configuration text into entries: a hand-written scanner over `key:value,key:[a:b]`
// that names the first malformed character (see config_syntax.h).
#include "allocator/api/config_syntax.h"

#include <cstddef>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"

namespace vramcache {
namespace {

constexpr std::string_view kSyntaxHint =
    "expected key:value entries separated by commas, a list as key:[a:b,c:d]";

bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}
bool IsDelimiter(char c) { return c == ',' || c == ':' || c == '[' || c == ']'; }

class Splitter {
 public:
  Splitter(std::string_view source, std::string_view text) : source_(source), text_(text) {}

  absl::StatusOr<std::vector<ConfigEntry>> Split() {
    std::vector<ConfigEntry> entries;
    SkipSpace();
    while (!AtEnd()) {
      absl::StatusOr<ConfigEntry> entry = ReadEntry();
      if (!entry.ok()) return entry.status();
      entries.push_back(std::move(*entry));
      SkipSpace();
      if (AtEnd()) break;
      if (Peek() != ',') {
        return Error(pos_, absl::StrFormat("unexpected '%c' after the value of key \"%s\"", Peek(),
                                           entries.back().key));
      }
      ++pos_;
      SkipSpace();  // a comma at the very end is tolerated, as PyTorch does
      if (!AtEnd() && Peek() == ',') {
        return Error(pos_, "empty entry (two commas in a row)");
      }
    }
    return entries;
  }

 private:
  absl::StatusOr<ConfigEntry> ReadEntry() {
    const std::size_t entry_start = pos_;
    ConfigEntry entry;
    entry.key = ReadToken();
    if (AtEnd() || Peek() == ',') {
      if (entry.key.empty()) return Error(entry_start, "empty entry (a leading comma)");
      return Error(entry_start,
                   absl::StrFormat("entry \"%s\" has no ':' (write key:value)", entry.key));
    }
    if (Peek() != ':') {
      return Error(pos_, absl::StrFormat("unexpected '%c' in key \"%s\"", Peek(), entry.key));
    }
    if (entry.key.empty()) return Error(entry_start, "empty key before ':'");
    ++pos_;
    SkipSpace();
    const std::size_t value_start = pos_;
    if (!AtEnd() && Peek() == '[') {
      ++pos_;
      entry.is_list = true;
      if (absl::Status s = ReadConfigListItems(entry.key, value_start, entry.items); !s.ok())
        return s;
    } else {
      entry.scalar = ReadToken();
      if (!AtEnd() && Peek() != ',') return UnexpectedInValue(entry.key);
      if (entry.scalar.empty()) {
        return Error(value_start, absl::StrFormat("key \"%s\" has no value", entry.key));
      }
    }
    entry.text = TrimConfigSpace(text_.substr(value_start, pos_ - value_start));
    return entry;
  }

  // After '['; leaves pos_ after the closing ']'.
  absl::Status ReadConfigListItems(std::string_view key, std::size_t list_start,
                                   std::vector<ConfigListItem>& items) {
    SkipSpace();
    if (!AtEnd() && Peek() == ']') {
      ++pos_;
      return absl::OkStatus();
    }
    while (true) {
      const std::size_t item_start = pos_;
      ConfigListItem item;
      item.key = ReadToken();
      if (AtEnd()) return UnclosedList(key, list_start);
      if (Peek() != ':') {
        if (Peek() == '[') return Error(pos_, absl::StrFormat("nested '[' in key \"%s\"", key));
        if (item.key.empty()) {
          return Error(item_start, absl::StrFormat("empty item in the list of key \"%s\"", key));
        }
        return Error(item_start,
                     absl::StrFormat("list item \"%s\" of key \"%s\" has no ':' (write [a:b,c:d])",
                                     item.key, key));
      }
      if (item.key.empty()) {
        return Error(item_start, absl::StrFormat("empty item key in the list of key \"%s\"", key));
      }
      ++pos_;
      item.value = ReadToken();
      if (AtEnd()) return UnclosedList(key, list_start);
      const char next = Peek();
      if (next == ':' || next == '[') {
        return Error(pos_, absl::StrFormat("unexpected '%c' in list item \"%s\" of key \"%s\"",
                                           next, item.key, key));
      }
      if (item.value.empty()) {
        return Error(pos_,
                     absl::StrFormat("list item \"%s\" of key \"%s\" has no value", item.key, key));
      }
      items.push_back(item);
      ++pos_;  // ',' or ']'
      if (next == ']') return absl::OkStatus();
      SkipSpace();
      if (AtEnd()) return UnclosedList(key, list_start);
      if (Peek() == ']') {  // a trailing comma inside the list, tolerated as at the end
        ++pos_;
        return absl::OkStatus();
      }
    }
  }

  // The text up to the next delimiter (or the end), without surrounding whitespace.
  std::string_view ReadToken() {
    const std::size_t start = pos_;
    while (!AtEnd() && !IsDelimiter(Peek())) ++pos_;
    return TrimConfigSpace(text_.substr(start, pos_ - start));
  }

  absl::Status UnexpectedInValue(std::string_view key) const {
    switch (Peek()) {
      case ':':
        return Error(pos_, absl::StrFormat("a second ':' in the value of key \"%s\" (a missing "
                                           "comma between two entries?)",
                                           key));
      case ']':
        return Error(pos_, absl::StrFormat("unbalanced ']' in the value of key \"%s\"", key));
      default:
        return Error(pos_, absl::StrFormat("unexpected '[' inside the value of key \"%s\" (a list "
                                           "must be the whole value)",
                                           key));
    }
  }

  absl::Status UnclosedList(std::string_view key, std::size_t list_start) const {
    return Error(list_start,
                 absl::StrFormat("unbalanced '[' in the value of key \"%s\": no closing ']'", key));
  }

  // `at` counts from 0; the message counts characters from 1, as people do.
  absl::Status Error(std::size_t at, std::string_view what) const {
    return absl::InvalidArgumentError(absl::StrFormat("%s: malformed %s at character %d: %s (%s)",
                                                      source_, QuotedForMessage(text_), at + 1,
                                                      what, kSyntaxHint));
  }

  void SkipSpace() {
    while (!AtEnd() && IsSpace(Peek())) ++pos_;
  }
  bool AtEnd() const { return pos_ >= text_.size(); }
  char Peek() const { return text_[pos_]; }

  std::string_view source_;
  std::string_view text_;
  std::size_t pos_ = 0;
};

}  // namespace

std::string_view TrimConfigSpace(std::string_view text) {
  while (!text.empty() && IsSpace(text.front())) text.remove_prefix(1);
  while (!text.empty() && IsSpace(text.back())) text.remove_suffix(1);
  return text;
}

std::string QuotedForMessage(std::string_view text) {
  constexpr std::size_t kMaxShown = 160;
  if (text.size() <= kMaxShown) return absl::StrFormat("\"%s\"", text);
  return absl::StrFormat("\"%s...\"", text.substr(0, kMaxShown));
}

absl::StatusOr<std::vector<ConfigEntry>> SplitConfigText(std::string_view source,
                                                         std::string_view text) {
  return Splitter(source, text).Split();
}

}  // namespace vramcache
