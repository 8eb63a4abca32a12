// The syntax of VRAMCACHE_CONF and PyTorch's allocator variables: `key:value,key:value`, a list
// value as `key:[a:b,c:d]`, whitespace around tokens ignored, one trailing comma (at the end or
// before `]`) tolerated, anything else malformed an error naming the variable, the character and
// what was expected. Splits text into entries; what a value means is up to its key
// (config_key_table.h).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace vramcache {

// One `a:b` of a list value.
struct ConfigListItem {
  std::string_view key;
  std::string_view value;
};

// One `key:value`. Views into the text that was split.
struct ConfigEntry {
  std::string_view key;
  std::string_view text;  // the value as written, brackets included for a list
  bool is_list = false;
  std::string_view scalar;            // when !is_list
  std::vector<ConfigListItem> items;  // when is_list
};

// The entries of `text` in order (a key given twice appears twice). `source` is the name errors
// give the text (the variable's). Malformed text is InvalidArgument.
absl::StatusOr<std::vector<ConfigEntry>> SplitConfigText(std::string_view source,
                                                         std::string_view text);

// `text` without the whitespace around it (space, tab, newline, CR, FF, VT).
std::string_view TrimConfigSpace(std::string_view text);

// `text` in double quotes for a message, cut after 160 characters ("...") so one bad key does
// not drown the line.
std::string QuotedForMessage(std::string_view text);

}  // namespace vramcache
