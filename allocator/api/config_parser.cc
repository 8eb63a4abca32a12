// Parses VRAMCACHE_CONF and PyTorch's allocator variables into an AllocatorConfig and describes a
// config back in the same syntax (see config_parser.h). Three stages: splitting the text into
// entries (syntax), reading each value (sizes, fractions, booleans, PyTorch's division lists),
// and the key table that says which keys each variable accepts and what each one sets.
#include "allocator/api/config_parser.h"

#include <algorithm>
#include <array>
#include <bit>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace vramcache {
namespace {

// The name errors give a string passed to vramcache_configure() / vramcache.install(conf).
constexpr std::string_view kConfigureSource = "vramcache_configure(conf)";

// ---------------------------------------------------------------------------------------------
// Syntax: `key:value,key:[a:b,c:d]` split into entries. Values are read later, by key.

struct ListItem {
  std::string_view key;
  std::string_view value;
};

struct Entry {
  std::string_view key;
  std::string_view text;  // the value as written, brackets included for a list
  bool is_list = false;
  std::string_view scalar;      // when !is_list
  std::vector<ListItem> items;  // when is_list
};

constexpr std::string_view kSyntaxHint =
    "expected key:value entries separated by commas, a list as key:[a:b,c:d]";

bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}
bool IsDelimiter(char c) { return c == ',' || c == ':' || c == '[' || c == ']'; }

std::string_view Trim(std::string_view text) {
  while (!text.empty() && IsSpace(text.front())) text.remove_prefix(1);
  while (!text.empty() && IsSpace(text.back())) text.remove_suffix(1);
  return text;
}

// Long strings are cut in messages so one bad key does not drown the line.
std::string Quoted(std::string_view text) {
  constexpr std::size_t kMaxShown = 160;
  if (text.size() <= kMaxShown) return absl::StrFormat("\"%s\"", text);
  return absl::StrFormat("\"%s...\"", text.substr(0, kMaxShown));
}

class Splitter {
 public:
  Splitter(std::string_view source, std::string_view text) : source_(source), text_(text) {}

  absl::StatusOr<std::vector<Entry>> Split() {
    std::vector<Entry> entries;
    SkipSpace();
    while (!AtEnd()) {
      absl::StatusOr<Entry> entry = ReadEntry();
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
  absl::StatusOr<Entry> ReadEntry() {
    const std::size_t entry_start = pos_;
    Entry entry;
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
      if (absl::Status s = ReadListItems(entry.key, value_start, entry.items); !s.ok()) return s;
    } else {
      entry.scalar = ReadToken();
      if (!AtEnd() && Peek() != ',') return UnexpectedInValue(entry.key);
      if (entry.scalar.empty()) {
        return Error(value_start, absl::StrFormat("key \"%s\" has no value", entry.key));
      }
    }
    entry.text = Trim(text_.substr(value_start, pos_ - value_start));
    return entry;
  }

  // After '['; leaves pos_ after the closing ']'.
  absl::Status ReadListItems(std::string_view key, std::size_t list_start,
                             std::vector<ListItem>& items) {
    SkipSpace();
    if (!AtEnd() && Peek() == ']') {
      ++pos_;
      return absl::OkStatus();
    }
    while (true) {
      const std::size_t item_start = pos_;
      ListItem item;
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
    return Trim(text_.substr(start, pos_ - start));
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
                                                      source_, Quoted(text_), at + 1, what,
                                                      kSyntaxHint));
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

// ---------------------------------------------------------------------------------------------
// Values. Each reader returns nullopt, or a short reason, on bad input; the caller names the
// variable, key and value and says what is allowed.

std::string Lower(std::string_view text) {
  std::string lower(text);
  for (char& c : lower) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return lower;
}

bool AllDigits(std::string_view text) {
  return !text.empty() &&
         std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::optional<std::uint64_t> ReadUnsigned(std::string_view text) {
  if (!AllDigits(text)) return std::nullopt;
  std::uint64_t value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

std::optional<double> ReadNumber(std::string_view text) {
  if (text.empty() || text.front() == '+') return std::nullopt;
  double value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size()) return std::nullopt;
  if (!std::isfinite(value)) return std::nullopt;
  return value;
}

bool IsPowerOfTwo(std::uint64_t value) { return std::has_single_bit(value); }

// A short reason for a bad value; ApplyEntry wraps it with the variable, key and allowed values.
absl::Status BadValue(std::string_view why) {
  return absl::InvalidArgumentError(absl::string_view(why.data(), why.size()));
}

// vramcache's spellings; PyTorch's own variable takes only PyTorch's (True / False).
std::optional<bool> ReadBool(std::string_view text, bool pytorch_spelling_only) {
  if (pytorch_spelling_only) {
    if (text == "True") return true;
    if (text == "False") return false;
    return std::nullopt;
  }
  const std::string lower = Lower(text);
  if (lower == "true" || lower == "on" || lower == "yes" || lower == "1") return true;
  if (lower == "false" || lower == "off" || lower == "no" || lower == "0") return false;
  return std::nullopt;
}

struct SizeUnit {
  std::string_view name;  // lower case
  int shift;
};

// Binary whatever the spelling: device memory comes in powers of two, and PyTorch's *_mb keys
// mean MiB too, so "MB" meaning 10^6 here would be the odd one out.
constexpr std::array<SizeUnit, 14> kSizeUnits = {{
    {"", 0},
    {"b", 0},
    {"k", 10},
    {"kb", 10},
    {"kib", 10},
    {"m", 20},
    {"mb", 20},
    {"mib", 20},
    {"g", 30},
    {"gb", 30},
    {"gib", 30},
    {"t", 40},
    {"tb", 40},
    {"tib", 40},
}};

// "4096", "2MiB", "1.5GiB", "24 GB": exact, or an error (a fraction of a byte, past 2^64 - 1).
absl::StatusOr<std::size_t> ReadSize(std::string_view text) {
  std::size_t number_end = 0;
  while (number_end < text.size() &&
         ((text[number_end] >= '0' && text[number_end] <= '9') || text[number_end] == '.')) {
    ++number_end;
  }
  const std::string_view number = text.substr(0, number_end);
  if (number.empty()) return BadValue("not a number");
  const std::string unit = Lower(Trim(text.substr(number_end)));
  const SizeUnit* found = nullptr;
  for (const SizeUnit& candidate : kSizeUnits) {
    if (candidate.name == unit) found = &candidate;
  }
  if (found == nullptr) return BadValue(absl::StrFormat("unknown unit \"%s\"", unit));
  const std::size_t point = number.find('.');
  const std::string_view whole_digits = number.substr(0, point);
  const std::string_view fraction_digits =
      point == std::string_view::npos ? std::string_view() : number.substr(point + 1);
  if ((whole_digits.empty() && fraction_digits.empty()) ||
      (!whole_digits.empty() && !AllDigits(whole_digits)) ||
      (!fraction_digits.empty() && !AllDigits(fraction_digits))) {
    return BadValue("not a number");
  }
  constexpr std::string_view kTooLarge = "larger than 2^64 - 1 bytes";
  std::uint64_t whole = 0;
  if (!whole_digits.empty()) {
    const std::optional<std::uint64_t> value = ReadUnsigned(whole_digits);
    if (!value.has_value()) return BadValue(kTooLarge);
    whole = *value;
  }
  std::uint64_t bytes = 0;
  if (whole > (std::numeric_limits<std::uint64_t>::max() >> found->shift)) {
    return BadValue(kTooLarge);
  }
  bytes = whole << found->shift;

  // fraction * 2^shift / 10^digits = (fraction / 5^digits) * 2^(shift - digits): whole bytes
  // exactly when 5^digits divides the fraction and the power of two works out, no overflow.
  constexpr std::size_t kMaxFractionDigits = 19;  // 10^19 - 1 still fits 64 bits
  const std::size_t last_significant = fraction_digits.find_last_not_of('0');
  const std::string_view significant = last_significant == std::string_view::npos
                                           ? std::string_view()
                                           : fraction_digits.substr(0, last_significant + 1);
  if (!significant.empty()) {
    if (significant.size() > kMaxFractionDigits) {
      return BadValue("too many decimal places");
    }
    const std::uint64_t fraction = *ReadUnsigned(significant);
    const int digits = static_cast<int>(significant.size());
    std::uint64_t five_power = 1;
    for (int i = 0; i < digits; ++i) five_power *= 5;
    if (fraction % five_power != 0) {
      return BadValue("not a whole number of bytes");
    }
    std::uint64_t part = fraction / five_power;
    if (found->shift >= digits) {
      part <<= (found->shift - digits);
    } else {
      const std::uint64_t mask = (std::uint64_t{1} << (digits - found->shift)) - 1;
      if ((part & mask) != 0) return BadValue("not a whole number of bytes");
      part >>= (digits - found->shift);
    }
    if (bytes > std::numeric_limits<std::uint64_t>::max() - part) {
      return BadValue(kTooLarge);
    }
    bytes += part;
  }
  if (bytes > std::numeric_limits<std::size_t>::max()) {
    return BadValue(kTooLarge);
  }
  return static_cast<std::size_t>(bytes);
}

// A size or, written as a non-integer number without a unit (0.5, 1.0, 5e-1), a fraction.
struct SizeOrFraction {
  std::optional<std::size_t> bytes;
  std::optional<double> fraction;
};

absl::StatusOr<SizeOrFraction> ReadSizeOrFraction(std::string_view text) {
  SizeOrFraction result;
  if (!AllDigits(text)) {
    if (std::optional<double> fraction = ReadNumber(text); fraction.has_value()) {
      if (!(*fraction > 0.0 && *fraction <= 1.0)) {
        return BadValue("a fraction must be in (0, 1]");
      }
      result.fraction = *fraction;
      return result;
    }
  }
  absl::StatusOr<std::size_t> bytes = ReadSize(text);
  if (!bytes.ok()) return bytes.status();
  if (*bytes == 0) return BadValue("0 bytes (write none for no limit)");
  result.bytes = *bytes;
  return result;
}

// ---------------------------------------------------------------------------------------------
// PyTorch's roundup_power2_divisions: 16 intervals, [1 MiB, 2 MiB) (and everything smaller) up to
// [32 GiB, ...) (and everything larger). AllocatorConfig keeps one entry per power of two.

constexpr std::size_t kPytorchIntervals = 16;
constexpr int kFirstIntervalLog2 = 20;  // 1 MiB
using PytorchDivisions = std::array<std::uint64_t, kPytorchIntervals>;

std::vector<std::size_t> ExpandDivisions(const PytorchDivisions& divisions) {
  if (std::all_of(divisions.begin(), divisions.end(), [](std::uint64_t d) { return d == 0; })) {
    return {};  // the config's "off everywhere"
  }
  std::vector<std::size_t> expanded(64);
  for (int log2 = 0; log2 < 64; ++log2) {
    const int interval =
        std::clamp(log2 - kFirstIntervalLog2, 0, static_cast<int>(kPytorchIntervals) - 1);
    expanded[log2] = static_cast<std::size_t>(divisions[interval]);
  }
  return expanded;
}

// PyTorch 2.11's reading of the value, step for step (AcceleratorAllocatorConfig::
// parseRoundUpPower2Divisions): a single number applies everywhere; in a list, the first bound
// also covers every smaller size, each later bound sets its own interval, and ">" every interval
// after the last bound given.
absl::StatusOr<std::vector<std::size_t>> ReadDivisions(const Entry& entry) {
  PytorchDivisions divisions{};
  if (!entry.is_list) {
    const std::optional<std::uint64_t> value = ReadUnsigned(entry.scalar);
    if (!value.has_value() || !IsPowerOfTwo(*value)) {
      return BadValue("a single number of divisions must be a power of two");
    }
    divisions.fill(*value);
    return ExpandDivisions(divisions);
  }
  bool first = true;
  std::size_t last_index = 0;
  for (const ListItem& item : entry.items) {
    const std::optional<std::uint64_t> value = ReadUnsigned(item.value);
    if (!value.has_value() || (*value != 0 && !IsPowerOfTwo(*value))) {
      return BadValue(absl::StrFormat("divisions \"%s\" (for \"%s\") must be 0 or a power of two",
                                      item.value, item.key));
    }
    if (item.key == ">") {
      std::fill(divisions.begin() + std::min(last_index + 1, kPytorchIntervals), divisions.end(),
                *value);
      continue;
    }
    const std::optional<std::uint64_t> bound_mb = ReadUnsigned(item.key);
    if (!bound_mb.has_value() || !IsPowerOfTwo(*bound_mb)) {
      return BadValue(
          absl::StrFormat("bound \"%s\" must be a power-of-two number of MiB, or >", item.key));
    }
    const std::size_t index =
        std::min<std::size_t>(std::countr_zero(*bound_mb), kPytorchIntervals - 1);
    if (first) {
      std::fill(divisions.begin(), divisions.begin() + index, *value);
      first = false;
    }
    divisions[index] = *value;
    last_index = index;
  }
  return ExpandDivisions(divisions);
}

// ---------------------------------------------------------------------------------------------
// Keys.

constexpr std::size_t kDefaultLargeSegmentSize = 20 * kMiB;  // PyTorch's kLargeBuffer
constexpr std::size_t kMinLargeSegmentSizeMb = 10;           // must be above (kMinLargeAlloc)
constexpr std::size_t kMinSimGranularity = 4 * kKiB;
// Enough for the cross-device cases tests need (8-GPU nodes and more); each simulated device
// costs a little host memory even in accounting mode.
constexpr std::uint64_t kMaxSimDevices = 16;
constexpr std::uint64_t kMaxPinnedRegisterThreads = 128;

struct ParseState {
  AllocatorConfig config;
  // PyTorch's large_segment_size_mb. AllocatorConfig has no field for it yet: it is validated
  // and sets the floor of the two *_mb split keys and the default of max_non_split_rounding_mb.
  std::size_t large_segment_size = kDefaultLargeSegmentSize;
  std::string_view large_segment_source;
  std::string_view max_split_source;      // where max_split_size_mb was set, if anywhere
  std::string_view max_non_split_source;  // where max_non_split_rounding_mb was set
  // Whether max_non_split_rounding was chosen (by a key, or by the caller's base config), so a
  // later large_segment_size_mb no longer moves it.
  bool max_non_split_fixed = false;
  bool pytorch_variable = false;  // reading PyTorch's variable: PyTorch's spellings
  std::string_view source;
};

enum class Home {
  kVramcache,  // VRAMCACHE_CONF only
  kPytorch,    // PyTorch's keys: both variables
};

using ApplyFn = absl::Status (*)(const Entry& entry, ParseState& state);

struct KeySpec {
  std::string_view name;
  Home home;
  bool is_bool;  // the allowed spellings then depend on the variable
  bool takes_list;
  std::string_view allowed;
  ApplyFn apply;
};

constexpr std::string_view kSizeAllowed =
    "a size > 0: bytes, or a number with a unit (B, K/KB/KiB, M/MB/MiB, G/GB/GiB, T/TB/TiB, all "
    "binary), e.g. 24GiB, 1.5GiB, 4096";
constexpr std::string_view kBudgetAllowed =
    "a size > 0 (bytes, or a number with a unit: B, K/KB/KiB, M/MB/MiB, G/GB/GiB, T/TB/TiB, all "
    "binary, e.g. 20GiB), a fraction of the device's memory in (0, 1] written as a decimal (0.5, "
    "1.0), or none";
constexpr std::string_view kVramcacheBoolAllowed = "true/false, on/off, yes/no or 1/0 (any case)";
constexpr std::string_view kPytorchBoolAllowed = "True or False (PyTorch's spelling)";

template <typename Enum, std::size_t N>
absl::Status ApplyChoice(const Entry& entry,
                         const std::array<std::pair<std::string_view, Enum>, N>& choices,
                         Enum& field) {
  const std::string lower = Lower(entry.scalar);
  for (const auto& [name, value] : choices) {
    if (lower == name) {
      field = value;
      return absl::OkStatus();
    }
  }
  return BadValue("not one of the choices");
}

absl::Status ApplyBool(const Entry& entry, const ParseState& state, bool& field) {
  const std::optional<bool> value = ReadBool(entry.scalar, state.pytorch_variable);
  if (!value.has_value()) return BadValue("not a boolean");
  field = *value;
  return absl::OkStatus();
}

// Validated like the keys that do something, then dropped: see docs/tuning.md for why.
absl::Status ValidateBoolOnly(const Entry& entry, ParseState& state) {
  bool ignored = false;
  return ApplyBool(entry, state, ignored);
}

// PyTorch's *_mb split keys: a whole number of MiB, at least the large-segment size, clamped so
// the bytes fit (as PyTorch clamps).
absl::Status ReadSplitMb(const Entry& entry, const ParseState& state, std::size_t& field) {
  const std::optional<std::uint64_t> mb = ReadUnsigned(entry.scalar);
  if (!mb.has_value()) return BadValue("not a whole number of MiB");
  const std::size_t floor_mb = state.large_segment_size / kMiB;
  if (*mb < floor_mb) {
    return BadValue(absl::StrFormat("below %d (large_segment_size_mb)", floor_mb));
  }
  field = static_cast<std::size_t>(
              std::min<std::uint64_t>(*mb, std::numeric_limits<std::size_t>::max() / kMiB)) *
          kMiB;
  return absl::OkStatus();
}

absl::Status ApplyDevice(const Entry& entry, ParseState& state) {
  static constexpr std::array<std::pair<std::string_view, DeviceKind>, 3> kChoices = {{
      {"cuda", DeviceKind::kCuda},
      {"sim", DeviceKind::kSim},
      {"auto", DeviceKind::kAuto},
  }};
  return ApplyChoice(entry, kChoices, state.config.device);
}

absl::Status ApplySimCapacity(const Entry& entry, ParseState& state) {
  absl::StatusOr<std::size_t> bytes = ReadSize(entry.scalar);
  if (!bytes.ok()) return bytes.status();
  if (*bytes == 0) return BadValue("0 bytes");
  state.config.sim_capacity = *bytes;
  return absl::OkStatus();
}

absl::Status ApplyReuseCache(const Entry& entry, ParseState& state) {
  absl::StatusOr<std::size_t> bytes = ReadSize(entry.scalar);
  if (!bytes.ok()) return bytes.status();
  state.config.reuse_cache_bytes = *bytes;
  return absl::OkStatus();
}

absl::Status ApplySimGranularity(const Entry& entry, ParseState& state) {
  absl::StatusOr<std::size_t> bytes = ReadSize(entry.scalar);
  if (!bytes.ok()) return bytes.status();
  if (!IsPowerOfTwo(*bytes) || *bytes < kMinSimGranularity) {
    return BadValue("not a power of two of at least 4KiB");
  }
  state.config.sim_granularity = *bytes;
  return absl::OkStatus();
}

absl::Status ApplySimDevices(const Entry& entry, ParseState& state) {
  const std::optional<std::uint64_t> count = ReadUnsigned(entry.scalar);
  if (!count.has_value() || *count == 0 || *count > kMaxSimDevices) {
    return BadValue(absl::StrFormat("not a whole number from 1 to %d", kMaxSimDevices));
  }
  state.config.sim_devices = static_cast<int>(*count);
  return absl::OkStatus();
}

absl::Status ApplySimBacking(const Entry& entry, ParseState& state) {
  static constexpr std::array<std::pair<std::string_view, bool>, 2> kChoices = {{
      {"accounting", true},
      {"memory", false},
  }};
  return ApplyChoice(entry, kChoices, state.config.sim_accounting_only);
}

// budget:<bytes> and per_process_memory_fraction are separate caps and both apply (the core
// takes the smaller); budget:<fraction> is per_process_memory_fraction; none lifts both.
absl::Status ApplyBudget(const Entry& entry, ParseState& state) {
  if (Lower(entry.scalar) == "none") {
    state.config.budget_bytes.reset();
    state.config.per_process_memory_fraction.reset();
    return absl::OkStatus();
  }
  absl::StatusOr<SizeOrFraction> value = ReadSizeOrFraction(entry.scalar);
  if (!value.ok()) return value.status();
  if (value->bytes.has_value()) state.config.budget_bytes = value->bytes;
  if (value->fraction.has_value()) state.config.per_process_memory_fraction = value->fraction;
  return absl::OkStatus();
}

// One soft cap, in bytes or as a fraction: setting one form clears the other.
absl::Status ApplySoftBudget(const Entry& entry, ParseState& state) {
  SizeOrFraction value;
  if (Lower(entry.scalar) != "none") {
    absl::StatusOr<SizeOrFraction> read = ReadSizeOrFraction(entry.scalar);
    if (!read.ok()) return read.status();
    value = *read;
  }
  state.config.soft_budget_bytes = value.bytes;
  state.config.soft_budget_fraction = value.fraction;
  return absl::OkStatus();
}

absl::Status ApplyVmm(const Entry& entry, ParseState& state) {
  static constexpr std::array<std::pair<std::string_view, VmmMode>, 3> kChoices = {{
      {"on", VmmMode::kOn},
      {"off", VmmMode::kOff},
      {"auto", VmmMode::kAuto},
  }};
  return ApplyChoice(entry, kChoices, state.config.vmm);
}

absl::Status ApplyCrossStream(const Entry& entry, ParseState& state) {
  static constexpr std::array<std::pair<std::string_view, CrossStreamPolicy>, 3> kChoices = {{
      {"none", CrossStreamPolicy::kNone},
      {"query", CrossStreamPolicy::kQuery},
      {"wait", CrossStreamPolicy::kWait},
  }};
  return ApplyChoice(entry, kChoices, state.config.cross_stream);
}

absl::Status ApplyHistoryCapacity(const Entry& entry, ParseState& state) {
  const std::optional<std::uint64_t> count = ReadUnsigned(entry.scalar);
  if (!count.has_value() || *count == 0 || *count > std::numeric_limits<std::size_t>::max()) {
    return BadValue("not a whole number >= 1");
  }
  state.config.history_capacity = static_cast<std::size_t>(*count);
  return absl::OkStatus();
}

// Read in a first pass over each variable, before the keys whose floor it sets (as PyTorch does).
absl::Status ApplyLargeSegmentSize(const Entry& entry, ParseState& state) {
  const std::optional<std::uint64_t> mb = ReadUnsigned(entry.scalar);
  if (!mb.has_value()) return BadValue("not a whole number of MiB");
  if (*mb <= kMinLargeSegmentSizeMb) return BadValue("not above 10");
  const std::size_t bytes = static_cast<std::size_t>(std::min<std::uint64_t>(
                                *mb, std::numeric_limits<std::size_t>::max() / kMiB)) *
                            kMiB;
  state.large_segment_size = bytes;
  state.large_segment_source = state.source;
  if (!state.max_non_split_fixed) state.config.max_non_split_rounding = bytes;
  return absl::OkStatus();
}

absl::Status ApplyMaxSplitSize(const Entry& entry, ParseState& state) {
  if (absl::Status s = ReadSplitMb(entry, state, state.config.max_split_size); !s.ok()) return s;
  state.max_split_source = state.source;
  return absl::OkStatus();
}

absl::Status ApplyMaxNonSplitRounding(const Entry& entry, ParseState& state) {
  if (absl::Status s = ReadSplitMb(entry, state, state.config.max_non_split_rounding); !s.ok()) {
    return s;
  }
  state.max_non_split_source = state.source;
  state.max_non_split_fixed = true;
  return absl::OkStatus();
}

absl::Status ApplyGarbageCollectionThreshold(const Entry& entry, ParseState& state) {
  const std::optional<double> value = ReadNumber(entry.scalar);
  if (!value.has_value() || !(*value > 0.0 && *value < 1.0)) return BadValue("not in (0, 1)");
  state.config.garbage_collection_threshold = *value;
  return absl::OkStatus();
}

absl::Status ApplyRoundupPower2Divisions(const Entry& entry, ParseState& state) {
  absl::StatusOr<std::vector<std::size_t>> divisions = ReadDivisions(entry);
  if (!divisions.ok()) return divisions.status();
  state.config.roundup_power2_divisions = std::move(*divisions);
  return absl::OkStatus();
}

absl::Status ApplyPerProcessMemoryFraction(const Entry& entry, ParseState& state) {
  const std::optional<double> value = ReadNumber(entry.scalar);
  if (!value.has_value() || !(*value >= 0.0 && *value <= 1.0)) return BadValue("not in [0, 1]");
  state.config.per_process_memory_fraction = *value;
  return absl::OkStatus();
}

absl::Status ApplyBackend(const Entry& entry, ParseState& state) {
  // PyTorch compares case-sensitively; hipMallocAsync exists only in ROCm builds.
  if (entry.scalar != "native" && entry.scalar != "cudaMallocAsync") {
    return BadValue("not a backend of CUDA builds");
  }
  state.config.backend = std::string(entry.scalar);
  return absl::OkStatus();
}

absl::Status ValidatePinnedNumRegisterThreads(const Entry& entry, ParseState&) {
  const std::optional<std::uint64_t> value = ReadUnsigned(entry.scalar);
  if (!value.has_value() || !IsPowerOfTwo(*value) || *value > kMaxPinnedRegisterThreads) {
    return BadValue("not a power of two <= 128");
  }
  return absl::OkStatus();
}

absl::Status ValidatePinnedReserveSegmentSize(const Entry& entry, ParseState&) {
  const std::optional<std::uint64_t> value = ReadUnsigned(entry.scalar);
  if (!value.has_value() || *value == 0) return BadValue("not a whole number of MiB > 0");
  return absl::OkStatus();
}

// Every key, vramcache's first. The table is the single list the parser, the error messages
// ("valid keys: ...") and DescribeConfig's order come from; docs/tuning.md follows it.
const std::array<KeySpec, 33>& Keys() {
  static constexpr std::array<KeySpec, 33> kKeys = {{
      {"device", Home::kVramcache, false, false, "cuda, sim or auto", ApplyDevice},
      {"sim_capacity", Home::kVramcache, false, false, kSizeAllowed, ApplySimCapacity},
      {"sim_granularity", Home::kVramcache, false, false,
       "a power-of-two size of at least 4KiB, e.g. 2MiB", ApplySimGranularity},
      {"sim_backing", Home::kVramcache, false, false, "accounting or memory", ApplySimBacking},
      {"sim_devices", Home::kVramcache, false, false, "a whole number from 1 to 16",
       ApplySimDevices},
      {"budget", Home::kVramcache, false, false, kBudgetAllowed, ApplyBudget},
      {"soft_budget", Home::kVramcache, false, false, kBudgetAllowed, ApplySoftBudget},
      {"vmm", Home::kVramcache, false, false, "on, off or auto", ApplyVmm},
      {"cross_stream", Home::kVramcache, false, false, "none, query or wait", ApplyCrossStream},
      {"poison_on_free", Home::kVramcache, true, false, kVramcacheBoolAllowed,
       [](const Entry& e, ParseState& s) { return ApplyBool(e, s, s.config.poison_on_free); }},
      {"canaries", Home::kVramcache, true, false, kVramcacheBoolAllowed,
       [](const Entry& e, ParseState& s) { return ApplyBool(e, s, s.config.canaries); }},
      {"unmap_on_free", Home::kVramcache, true, false, kVramcacheBoolAllowed,
       [](const Entry& e, ParseState& s) { return ApplyBool(e, s, s.config.unmap_on_free); }},
      {"zero_on_alloc", Home::kVramcache, true, false, kVramcacheBoolAllowed,
       [](const Entry& e, ParseState& s) { return ApplyBool(e, s, s.config.zero_on_alloc); }},
      {"record_history", Home::kVramcache, true, false, kVramcacheBoolAllowed,
       [](const Entry& e, ParseState& s) { return ApplyBool(e, s, s.config.record_history); }},
      {"history_capacity", Home::kVramcache, false, false, "a whole number >= 1",
       ApplyHistoryCapacity},
      {"reuse_cache", Home::kVramcache, false, false, "a size (0 turns the reuse cache off)",
       ApplyReuseCache},
      {"check_invariants", Home::kVramcache, true, false, kVramcacheBoolAllowed,
       [](const Entry& e, ParseState& s) { return ApplyBool(e, s, s.config.check_invariants); }},
      // PyTorch 2.11's keys: AcceleratorAllocatorConfig's, then CUDAAllocatorConfig's.
      {"large_segment_size_mb", Home::kPytorch, false, false, "a whole number of MiB above 10",
       ApplyLargeSegmentSize},
      {"max_split_size_mb", Home::kPytorch, false, false,
       "a whole number of MiB >= large_segment_size_mb (20 unless set)", ApplyMaxSplitSize},
      {"max_non_split_rounding_mb", Home::kPytorch, false, false,
       "a whole number of MiB >= large_segment_size_mb (20 unless set)", ApplyMaxNonSplitRounding},
      {"garbage_collection_threshold", Home::kPytorch, false, false, "a number in (0, 1), e.g. 0.8",
       ApplyGarbageCollectionThreshold},
      {"roundup_power2_divisions", Home::kPytorch, false, true,
       "a power of two (e.g. 4), or a list [MiB:divisions,...,>:divisions] (e.g. "
       "[256:1,512:2,1024:4,>:8]) with each MiB bound a power of two and each divisions 0 or a "
       "power of two",
       ApplyRoundupPower2Divisions},
      {"expandable_segments", Home::kPytorch, true, false, kVramcacheBoolAllowed,
       [](const Entry& e, ParseState& s) { return ApplyBool(e, s, s.config.expandable_segments); }},
      {"pinned_use_background_threads", Home::kPytorch, true, false, kVramcacheBoolAllowed,
       ValidateBoolOnly},
      {"backend", Home::kPytorch, false, false, "native or cudaMallocAsync", ApplyBackend},
      {"release_lock_on_cudamalloc", Home::kPytorch, true, false, kVramcacheBoolAllowed,
       [](const Entry& e, ParseState& s) {
         return ApplyBool(e, s, s.config.release_lock_on_cudamalloc);
       }},
      {"release_lock_on_hipmalloc", Home::kPytorch, true, false, kVramcacheBoolAllowed,
       [](const Entry& e, ParseState& s) {
         return ApplyBool(e, s, s.config.release_lock_on_cudamalloc);
       }},
      {"pinned_use_cuda_host_register", Home::kPytorch, true, false, kVramcacheBoolAllowed,
       ValidateBoolOnly},
      {"pinned_use_hip_host_register", Home::kPytorch, true, false, kVramcacheBoolAllowed,
       ValidateBoolOnly},
      {"graph_capture_record_stream_reuse", Home::kPytorch, true, false, kVramcacheBoolAllowed,
       [](const Entry& e, ParseState& s) {
         return ApplyBool(e, s, s.config.graph_capture_record_stream_reuse);
       }},
      {"pinned_reserve_segment_size_mb", Home::kPytorch, false, false, "a whole number of MiB > 0",
       ValidatePinnedReserveSegmentSize},
      {"pinned_num_register_threads", Home::kPytorch, false, false, "a power of two <= 128",
       ValidatePinnedNumRegisterThreads},
      {"per_process_memory_fraction", Home::kPytorch, false, false, "a number in [0, 1]",
       ApplyPerProcessMemoryFraction},
  }};
  return kKeys;
}

const KeySpec* FindKey(std::string_view name) {
  for (const KeySpec& spec : Keys()) {
    if (spec.name == name) return &spec;
  }
  return nullptr;
}

bool Accepts(const ParseState& state, const KeySpec& spec) {
  return !state.pytorch_variable || spec.home == Home::kPytorch;
}

// Edit distance with adjacent transpositions counted as one edit (optimal string alignment).
std::size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
  for (std::size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (std::size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.size()][b.size()];
}

// The accepted key closest to `key`, when close enough to be a typo.
std::optional<std::string_view> ClosestKey(const ParseState& state, std::string_view key) {
  const std::string lower = Lower(key);
  const std::size_t max_distance = std::clamp<std::size_t>(lower.size() / 3, 1, 3);
  std::optional<std::string_view> best;
  std::size_t best_distance = max_distance + 1;
  for (const KeySpec& spec : Keys()) {
    if (!Accepts(state, spec)) continue;
    const std::size_t distance = EditDistance(lower, spec.name);
    if (distance < best_distance) {
      best = spec.name;
      best_distance = distance;
    }
  }
  return best;
}

std::string KeyList(const ParseState& state, Home home) {
  std::string list;
  for (const KeySpec& spec : Keys()) {
    if (spec.home != home || !Accepts(state, spec)) continue;
    if (!list.empty()) list += ", ";
    list += spec.name;
  }
  return list;
}

std::string ValidKeys(const ParseState& state) {
  if (state.pytorch_variable) {
    return absl::StrFormat("valid keys (PyTorch 2.11's): %s", KeyList(state, Home::kPytorch));
  }
  return absl::StrFormat("valid keys: vramcache's %s; PyTorch's %s",
                         KeyList(state, Home::kVramcache), KeyList(state, Home::kPytorch));
}

absl::Status UnknownKey(const ParseState& state, const Entry& entry) {
  if (const KeySpec* spec = FindKey(entry.key); spec != nullptr) {
    // Known, but vramcache's own in PyTorch's variable: PyTorch itself would reject it.
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: key \"%s\" (value %s) is vramcache's own, not PyTorch's: set it in %s. %s",
        state.source, entry.key, Quoted(entry.text), kVramcacheConfVariable, ValidKeys(state)));
  }
  // "...; did you mean "x"? valid keys: ..." or "...; valid keys: ...".
  std::string suggestion = ";";
  if (std::optional<std::string_view> closest = ClosestKey(state, entry.key); closest) {
    suggestion = absl::StrFormat("; did you mean \"%s\"?", *closest);
  }
  return absl::InvalidArgumentError(absl::StrFormat("%s: unknown key \"%s\" (value %s)%s %s",
                                                    state.source, entry.key, Quoted(entry.text),
                                                    suggestion, ValidKeys(state)));
}

absl::Status ApplyEntry(const Entry& entry, ParseState& state) {
  const KeySpec* spec = FindKey(entry.key);
  if (spec == nullptr || !Accepts(state, *spec)) return UnknownKey(state, entry);
  const std::string_view allowed =
      spec->is_bool && state.pytorch_variable ? kPytorchBoolAllowed : spec->allowed;
  absl::Status status = absl::OkStatus();
  if (entry.is_list && !spec->takes_list) {
    status = BadValue("a list, but the key takes a single value");
  } else {
    status = spec->apply(entry, state);
  }
  if (status.ok()) return status;
  return absl::InvalidArgumentError(
      absl::StrFormat("%s: bad value %s for key \"%s\": %s; allowed: %s", state.source,
                      Quoted(entry.text), entry.key, status.message(), allowed));
}

// One variable, on top of what `state` holds. Its large_segment_size_mb goes first.
absl::Status ApplyText(std::string_view source, std::string_view text, bool pytorch_variable,
                       ParseState& state) {
  absl::StatusOr<std::vector<Entry>> entries = Splitter(source, text).Split();
  if (!entries.ok()) return entries.status();
  state.source = source;
  state.pytorch_variable = pytorch_variable;
  for (const Entry& entry : *entries) {
    if (entry.key != "large_segment_size_mb") continue;
    if (absl::Status s = ApplyEntry(entry, state); !s.ok()) return s;
  }
  for (const Entry& entry : *entries) {
    if (entry.key == "large_segment_size_mb") continue;
    if (absl::Status s = ApplyEntry(entry, state); !s.ok()) return s;
  }
  return absl::OkStatus();
}

// Across variables a split key can end below a large_segment_size_mb set elsewhere.
absl::Status CheckSplitFloors(const ParseState& state) {
  const std::size_t floor_mb = state.large_segment_size / kMiB;
  const auto check = [&](std::string_view key, std::size_t bytes,
                         std::string_view key_source) -> absl::Status {
    if (key_source.empty() || bytes >= state.large_segment_size) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: bad value \"%d\" for key \"%s\": below large_segment_size_mb %d set in %s; allowed: "
        "a whole number of MiB >= large_segment_size_mb",
        key_source, bytes / kMiB, key, floor_mb, state.large_segment_source));
  };
  if (absl::Status s =
          check("max_split_size_mb", state.config.max_split_size, state.max_split_source);
      !s.ok()) {
    return s;
  }
  return check("max_non_split_rounding_mb", state.config.max_non_split_rounding,
               state.max_non_split_source);
}

struct Layer {
  std::string_view source;
  std::string_view text;
  bool pytorch_variable;
};

std::string FormatSize(std::size_t bytes);

// Simulated sizes no allocation could use are refused with what would work: a capacity below
// one granule fails every allocation, and a capacity's remainder of a granule is never used.
// Checked once every layer is in, as the two keys may come from different variables.
absl::Status CheckSimSizes(const AllocatorConfig& config) {
  const std::size_t capacity = config.sim_capacity;
  const std::size_t granularity = config.sim_granularity;
  if (capacity < granularity) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "vramcache: sim_capacity %s is smaller than sim_granularity %s: every allocation would "
        "fail; use a capacity of at least %s, or a smaller granularity",
        FormatSize(capacity), FormatSize(granularity), FormatSize(granularity)));
  }
  const std::size_t rest = capacity % granularity;
  if (rest == 0) return absl::OkStatus();
  const std::size_t below = capacity - rest;
  const std::string above = capacity - rest <= std::numeric_limits<std::size_t>::max() - granularity
                                ? absl::StrCat(" or ", FormatSize(below + granularity))
                                : "";
  return absl::InvalidArgumentError(absl::StrFormat(
      "vramcache: sim_capacity %s is not a multiple of sim_granularity %s: %s of it could never "
      "be used; use %s%s",
      FormatSize(capacity), FormatSize(granularity), FormatSize(rest), FormatSize(below), above));
}

absl::StatusOr<AllocatorConfig> ApplyLayers(const AllocatorConfig& base,
                                            std::span<const Layer> layers) {
  ParseState state;
  state.config = base;
  state.max_non_split_fixed = base.max_non_split_rounding != kDefaultLargeSegmentSize;
  for (const Layer& layer : layers) {
    if (absl::Status s = ApplyText(layer.source, layer.text, layer.pytorch_variable, state);
        !s.ok()) {
      return s;
    }
  }
  if (absl::Status s = CheckSplitFloors(state); !s.ok()) return s;
  if (absl::Status s = CheckSimSizes(state.config); !s.ok()) return s;
  return state.config;
}

std::string_view GetEnv(std::string_view name) {
  const char* value = std::getenv(std::string(name).c_str());
  return value == nullptr ? std::string_view() : std::string_view(value);
}

bool EnvSet(std::string_view name) { return std::getenv(std::string(name).c_str()) != nullptr; }

// ---------------------------------------------------------------------------------------------
// DescribeConfig.

std::string FormatSize(std::size_t bytes) {
  static constexpr std::array<std::pair<int, std::string_view>, 4> kUnits = {{
      {40, "TiB"},
      {30, "GiB"},
      {20, "MiB"},
      {10, "KiB"},
  }};
  for (const auto& [shift, name] : kUnits) {
    const std::size_t unit = std::size_t{1} << shift;
    if (bytes != 0 && bytes % unit == 0) return absl::StrFormat("%d%s", bytes / unit, name);
  }
  return absl::StrFormat("%d", bytes);
}

// The shortest text that reads back as the same double, never a bare integer (so budget reads
// it as a fraction, not bytes).
std::string FormatNumber(double value) {
  std::string text;
  for (int precision = 1; precision <= 17; ++precision) {
    text = absl::StrFormat("%.*g", precision, value);
    if (ReadNumber(text) == value) break;
  }
  if (AllDigits(text)) text += ".0";
  return text;
}

std::string_view BoolText(bool value) { return value ? "true" : "false"; }
std::string_view PytorchBoolText(bool value) { return value ? "True" : "False"; }

std::string DescribeBudget(std::optional<std::size_t> bytes, std::optional<double> fraction) {
  if (bytes.has_value()) return FormatSize(*bytes);
  if (fraction.has_value() && *fraction > 0.0) return FormatNumber(*fraction);
  return "none";
}

// roundup_power2_divisions back in PyTorch's form ("" when off): a single number when every
// interval agrees, else a list whose first bound also covers the intervals below it, explicit
// bounds for the middle, and ">" for the trailing run.
std::string DescribeDivisions(const std::vector<std::size_t>& expanded) {
  PytorchDivisions divisions{};
  for (std::size_t i = 0; i < kPytorchIntervals; ++i) {
    const std::size_t log2 = kFirstIntervalLog2 + i;
    divisions[i] = log2 < expanded.size() ? expanded[log2] : 0;
  }
  const auto bound = [](std::size_t index) { return std::uint64_t{1} << index; };
  std::size_t prefix_end = 1;  // divisions[0, prefix_end) equal divisions[0]
  while (prefix_end < kPytorchIntervals && divisions[prefix_end] == divisions[0]) ++prefix_end;
  if (prefix_end == kPytorchIntervals) {
    if (divisions[0] == 0) return "";
    if (IsPowerOfTwo(divisions[0])) return absl::StrFormat("%d", divisions[0]);
    return absl::StrFormat("[%d:%d]", bound(kPytorchIntervals - 1), divisions[0]);
  }
  std::size_t suffix_start = kPytorchIntervals - 1;  // divisions[suffix_start, 16) are equal
  while (suffix_start > prefix_end && divisions[suffix_start - 1] == divisions.back()) {
    --suffix_start;
  }
  std::string list = absl::StrFormat("[%d:%d", bound(prefix_end - 1), divisions[0]);
  for (std::size_t i = prefix_end; i < suffix_start; ++i) {
    list += absl::StrFormat(",%d:%d", bound(i), divisions[i]);
  }
  return list + absl::StrFormat(",>:%d]", divisions.back());
}

std::string_view DeviceText(DeviceKind device) {
  switch (device) {
    case DeviceKind::kCuda:
      return "cuda";
    case DeviceKind::kSim:
      return "sim";
    case DeviceKind::kAuto:
      break;
  }
  return "auto";
}

std::string_view VmmText(VmmMode vmm) {
  switch (vmm) {
    case VmmMode::kOn:
      return "on";
    case VmmMode::kOff:
      return "off";
    case VmmMode::kAuto:
      break;
  }
  return "auto";
}

std::string_view CrossStreamText(CrossStreamPolicy policy) {
  switch (policy) {
    case CrossStreamPolicy::kNone:
      return "none";
    case CrossStreamPolicy::kQuery:
      return "query";
    case CrossStreamPolicy::kWait:
      break;
  }
  return "wait";
}

}  // namespace

absl::StatusOr<AllocatorConfig> ParseConfig(std::string_view vramcache_conf,
                                            std::string_view pytorch_conf,
                                            std::string_view pytorch_variable) {
  const std::array<Layer, 2> layers = {{
      {pytorch_variable, pytorch_conf, true},
      {kVramcacheConfVariable, vramcache_conf, false},
  }};
  return ApplyLayers(AllocatorConfig{}, layers);
}

absl::StatusOr<AllocatorConfig> ParseConfigOnto(std::string_view conf, const AllocatorConfig& base,
                                                std::string_view source) {
  const std::array<Layer, 1> layers = {{{source, conf, false}}};
  return ApplyLayers(base, layers);
}

std::string_view PytorchConfVariableInEnvironment() {
  // PyTorch 2.11 (CUDAAllocatorConfig::instance and AcceleratorAllocatorConfig::instance) looks
  // for the old name first and parses the first variable it finds.
  if (EnvSet(kPytorchCudaAllocConfVariable)) return kPytorchCudaAllocConfVariable;
  if (EnvSet(kPytorchAllocConfVariable)) return kPytorchAllocConfVariable;
  return {};
}

absl::StatusOr<AllocatorConfig> ConfigFromEnvironment() {
  return ConfigFromEnvironmentWith({}, nullptr);
}

absl::StatusOr<AllocatorConfig> ConfigFromEnvironmentWith(std::string_view conf,
                                                          std::string* set_aside) {
  const std::string_view pytorch_variable = PytorchConfVariableInEnvironment();
  const std::string pytorch_text(
      GetEnv(pytorch_variable.empty() ? kPytorchAllocConfVariable : pytorch_variable));
  const std::string vramcache_text(GetEnv(kVramcacheConfVariable));
  const std::array<Layer, 3> layers = {{
      {pytorch_variable.empty() ? kPytorchAllocConfVariable : pytorch_variable, pytorch_text, true},
      {kVramcacheConfVariable, vramcache_text, false},
      {kConfigureSource, conf, false},
  }};
  absl::StatusOr<AllocatorConfig> config = ApplyLayers(AllocatorConfig{}, layers);
  if (config.ok() || Trim(conf).empty()) return config;
  // A bad environment must not outlive an explicit configuration (the process could never
  // recover): when the variables alone fail, `conf` replaces them.
  absl::StatusOr<AllocatorConfig> environment =
      ApplyLayers(AllocatorConfig{}, std::span<const Layer>(layers.data(), 2));
  if (environment.ok()) return config;  // the error is conf's, or conf's with the variables'
  absl::StatusOr<AllocatorConfig> explicit_only =
      ApplyLayers(AllocatorConfig{}, std::span<const Layer>(layers.data() + 2, 1));
  if (explicit_only.ok() && set_aside != nullptr) {
    *set_aside = std::string(environment.status().message());
  }
  return explicit_only;
}

std::vector<std::string_view> ConfigKeyNames(bool pytorch_only) {
  std::vector<std::string_view> names;
  for (const KeySpec& spec : Keys()) {
    if (!pytorch_only || spec.home == Home::kPytorch) names.push_back(spec.name);
  }
  return names;
}

absl::StatusOr<std::size_t> ParseByteSize(std::string_view text) {
  absl::StatusOr<std::size_t> bytes = ReadSize(Trim(text));
  if (!bytes.ok()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("\"%s\" is not a size (%s); e.g. 3221225472, 3GiB, 512MiB", text,
                        bytes.status().message()));
  }
  return bytes;
}

absl::Status CheckImplemented(const AllocatorConfig& config) {
  if (config.unmap_on_free && config.vmm == VmmMode::kOff) {
    return absl::InvalidArgumentError(
        "vramcache: unmap_on_free needs the virtual-memory mode (freed ranges are unmapped); "
        "use vmm:auto or vmm:on with it");
  }
  return absl::OkStatus();
}

std::string DescribeConfig(const AllocatorConfig& config) {
  std::vector<std::string> parts = {
      absl::StrFormat("device:%s", DeviceText(config.device)),
      absl::StrFormat("sim_capacity:%s", FormatSize(config.sim_capacity)),
      absl::StrFormat("sim_granularity:%s", FormatSize(config.sim_granularity)),
      absl::StrFormat("sim_backing:%s", config.sim_accounting_only ? "accounting" : "memory"),
      absl::StrFormat("sim_devices:%d", config.sim_devices),
      absl::StrFormat("budget:%s",
                      DescribeBudget(config.budget_bytes, config.per_process_memory_fraction)),
      absl::StrFormat("soft_budget:%s",
                      DescribeBudget(config.soft_budget_bytes, config.soft_budget_fraction)),
      absl::StrFormat("vmm:%s", VmmText(config.vmm)),
      absl::StrFormat("cross_stream:%s", CrossStreamText(config.cross_stream)),
      absl::StrFormat("poison_on_free:%s", BoolText(config.poison_on_free)),
      absl::StrFormat("canaries:%s", BoolText(config.canaries)),
      absl::StrFormat("unmap_on_free:%s", BoolText(config.unmap_on_free)),
      absl::StrFormat("zero_on_alloc:%s", BoolText(config.zero_on_alloc)),
      absl::StrFormat("record_history:%s", BoolText(config.record_history)),
      absl::StrFormat("history_capacity:%d", config.history_capacity),
      absl::StrFormat("check_invariants:%s", BoolText(config.check_invariants)),
  };
  if (config.reuse_cache_bytes.has_value()) {
    parts.push_back(absl::StrFormat("reuse_cache:%s", FormatSize(*config.reuse_cache_bytes)));
  }
  const AllocatorConfig defaults;
  if (config.max_split_size != defaults.max_split_size) {
    parts.push_back(absl::StrFormat("max_split_size_mb:%d", config.max_split_size / kMiB));
  }
  if (config.max_non_split_rounding != defaults.max_non_split_rounding) {
    parts.push_back(
        absl::StrFormat("max_non_split_rounding_mb:%d", config.max_non_split_rounding / kMiB));
  }
  if (const std::string divisions = DescribeDivisions(config.roundup_power2_divisions);
      !divisions.empty()) {
    parts.push_back(absl::StrFormat("roundup_power2_divisions:%s", divisions));
  }
  if (config.garbage_collection_threshold != defaults.garbage_collection_threshold) {
    parts.push_back(absl::StrFormat("garbage_collection_threshold:%s",
                                    FormatNumber(config.garbage_collection_threshold)));
  }
  if (config.expandable_segments != defaults.expandable_segments) {
    parts.push_back(
        absl::StrFormat("expandable_segments:%s", PytorchBoolText(config.expandable_segments)));
  }
  // budget: above shows the byte cap when both are set, and cannot show a fraction of 0.
  if (config.per_process_memory_fraction.has_value() &&
      (config.budget_bytes.has_value() || *config.per_process_memory_fraction == 0.0)) {
    parts.push_back(absl::StrFormat("per_process_memory_fraction:%s",
                                    FormatNumber(*config.per_process_memory_fraction)));
  }
  if (config.release_lock_on_cudamalloc != defaults.release_lock_on_cudamalloc) {
    parts.push_back(absl::StrFormat("release_lock_on_cudamalloc:%s",
                                    PytorchBoolText(config.release_lock_on_cudamalloc)));
  }
  if (config.graph_capture_record_stream_reuse != defaults.graph_capture_record_stream_reuse) {
    parts.push_back(absl::StrFormat("graph_capture_record_stream_reuse:%s",
                                    PytorchBoolText(config.graph_capture_record_stream_reuse)));
  }
  if (config.backend != defaults.backend) {
    parts.push_back(absl::StrFormat("backend:%s", config.backend));
  }
  std::string line;
  for (const std::string& part : parts) {
    if (!line.empty()) line += ",";
    line += part;
  }
  return line;
}

}  // namespace vramcache
