// The two parsers of an RMM CSV line. The fast one does a single pass, reading numbers while it
// looks for the commas, because it runs ~100k times per trace; the general one favours clear
// messages over speed and runs only for unusual or bad lines.
#include "allocator/trace/rmm_csv_line.h"

#include <array>
#include <charconv>
#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace vramcache {
namespace {

constexpr std::size_t kNumFields = 6;
constexpr std::size_t kMaxDecimalDigits = 19;  // any 19-digit number fits in 64 bits
constexpr std::size_t kMaxHexDigits = 16;
constexpr std::size_t kMaxHourDigits = 6;
// Microseconds per unit of the last fraction digit, by number of fraction digits.
constexpr std::int64_t kFractionScale[] = {0, 100000, 10000, 1000, 100, 10, 1};

// --- fast path ---
//
// Every reader below stops at the first character it does not expect, and a line given to the
// fast path is known to end with '\n' (which none of them accepts), so none needs to compare
// against the end of the buffer: that halves the instructions per byte.

constexpr std::array<std::int8_t, 256> MakeHexTable() {
  std::array<std::int8_t, 256> table{};
  for (auto& entry : table) entry = -1;
  for (int c = '0'; c <= '9'; ++c) table[c] = static_cast<std::int8_t>(c - '0');
  for (int c = 'a'; c <= 'f'; ++c) table[c] = static_cast<std::int8_t>(c - 'a' + 10);
  for (int c = 'A'; c <= 'F'; ++c) table[c] = static_cast<std::int8_t>(c - 'A' + 10);
  return table;
}
constexpr std::array<std::int8_t, 256> kHexValue = MakeHexTable();

inline bool IsDigit(char c) { return static_cast<unsigned char>(c - '0') < 10; }

// Reads 1 to `max_digits` decimal digits at `p`.
inline bool ReadDecimal(const char*& p, std::size_t max_digits, std::uint64_t* value) {
  const char* const start = p;
  std::uint64_t v = 0;
  while (IsDigit(*p)) v = v * 10 + static_cast<std::uint64_t>(*p++ - '0');
  const auto digits = static_cast<std::size_t>(p - start);
  *value = v;
  return digits > 0 && digits <= max_digits;
}

inline bool ReadHex(const char*& p, std::uint64_t* value) {
  const char* const start = p;
  std::uint64_t v = 0;
  for (std::int8_t digit; (digit = kHexValue[static_cast<unsigned char>(*p)]) >= 0; ++p) {
    v = (v << 4) | static_cast<std::uint64_t>(digit);
  }
  const auto digits = static_cast<std::size_t>(p - start);
  *value = v;
  return digits > 0 && digits <= kMaxHexDigits;
}

inline bool Expect(const char*& p, char c) {
  if (*p != c) return false;
  ++p;
  return true;
}

// Compares character by character, so it never reads past the newline that ends the line.
inline bool ExpectWord(const char*& p, absl::string_view word) {
  for (std::size_t i = 0; i < word.size(); ++i) {
    if (p[i] != word[i]) return false;
  }
  p += word.size();
  return true;
}

inline bool SkipHexPrefix(const char*& p) {
  if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
    p += 2;
    return true;
  }
  return false;
}

inline bool ReadTwoDigitsBelow60(const char*& p, std::int64_t* value) {
  if (!IsDigit(p[0]) || !IsDigit(p[1])) return false;
  *value = (p[0] - '0') * 10 + (p[1] - '0');
  p += 2;
  return *value < 60;
}

// HH:MM:SS.ffffff exactly, as RMM writes it: fifteen characters checked and converted in
// straight-line code, since the general loop below costs twice as much and runs on every line.
inline bool ReadFixedTime(const char*& p, std::int64_t* time_us) {
  const char* t = p;
  // Short-circuit order matters: no character is read past the first one that does not match.
  if (!(IsDigit(t[0]) && IsDigit(t[1]) && t[2] == ':' && IsDigit(t[3]) && IsDigit(t[4]) &&
        t[5] == ':' && IsDigit(t[6]) && IsDigit(t[7]) && t[8] == '.' && IsDigit(t[9]) &&
        IsDigit(t[10]) && IsDigit(t[11]) && IsDigit(t[12]) && IsDigit(t[13]) && IsDigit(t[14]) &&
        !IsDigit(t[15]))) {
    return false;
  }
  const auto digit = [t](int i) { return static_cast<std::int64_t>(t[i] - '0'); };
  const std::int64_t minutes = digit(3) * 10 + digit(4);
  const std::int64_t seconds = digit(6) * 10 + digit(7);
  if (minutes >= 60 || seconds >= 60) return false;
  const std::int64_t hours = digit(0) * 10 + digit(1);
  const std::int64_t micros = ((digit(9) * 10 + digit(10)) * 10 + digit(11)) * 1000 +
                              (digit(12) * 10 + digit(13)) * 10 + digit(14);
  *time_us = ((hours * 60 + minutes) * 60 + seconds) * 1'000'000 + micros;
  p += 15;
  return true;
}

inline bool ReadTime(const char*& p, std::int64_t* time_us) {
  if (ReadFixedTime(p, time_us)) return true;
  std::uint64_t hours = 0;
  std::int64_t minutes = 0;
  std::int64_t seconds = 0;
  if (!ReadDecimal(p, kMaxHourDigits, &hours) || !Expect(p, ':') ||
      !ReadTwoDigitsBelow60(p, &minutes) || !Expect(p, ':') || !ReadTwoDigitsBelow60(p, &seconds) ||
      !Expect(p, '.')) {
    return false;
  }
  std::uint64_t fraction = 0;
  const char* const fraction_start = p;
  if (!ReadDecimal(p, 6, &fraction)) return false;
  *time_us = ((static_cast<std::int64_t>(hours) * 60 + minutes) * 60 + seconds) * 1'000'000 +
             static_cast<std::int64_t>(fraction) * kFractionScale[p - fraction_start];
  return true;
}

// --- general path ---

std::optional<std::uint64_t> ParseUnsigned(absl::string_view text, int base) {
  std::uint64_t value = 0;
  if (text.empty()) return std::nullopt;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value, base);
  if (error != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

bool HasHexPrefix(absl::string_view text) {
  return text.size() > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X');
}

std::optional<std::uint64_t> ParsePointer(absl::string_view text) {
  if (HasHexPrefix(text)) text.remove_prefix(2);
  return ParseUnsigned(text, 16);
}

// Decimal unless it says it is hex: a 0x prefix, or hex letters (RMM's %llx writes neither).
std::optional<std::uint64_t> ParseStream(absl::string_view text) {
  if (HasHexPrefix(text)) return ParseUnsigned(text.substr(2), 16);
  if (std::optional<std::uint64_t> decimal = ParseUnsigned(text, 10)) return decimal;
  return ParseUnsigned(text, 16);
}

std::optional<std::int64_t> ParseTime(absl::string_view text) {
  // The fast readers need a terminator they do not accept.
  const std::string terminated = absl::StrCat(text, "\n");
  const char* p = terminated.data();
  std::int64_t time_us = 0;
  if (!ReadTime(p, &time_us) || *p != '\n') return std::nullopt;
  return time_us;
}

// Quoted input stays short: a binary file fed by mistake must not flood the terminal.
std::string Excerpt(absl::string_view text) { return ExcerptForMessage(text); }

absl::Status BadField(absl::string_view name, absl::string_view value, absl::string_view expected) {
  return absl::InvalidArgumentError(
      absl::StrCat("bad ", name, " \"", Excerpt(value), "\" (expected ", expected, ")"));
}

}  // namespace

std::string ExcerptForMessage(absl::string_view text) {
  constexpr std::size_t kMaxExcerpt = 80;
  if (text.size() <= kMaxExcerpt) return absl::CEscape(text);
  return absl::StrCat(absl::CEscape(text.substr(0, kMaxExcerpt)), "...");
}

const char* TryParseCanonicalRmmCsvLine(const char* begin, RmmCsvLine* line) {
  const char* p = begin;
  if (!ReadDecimal(p, kMaxDecimalDigits, &line->thread) || !Expect(p, ',') ||
      !ReadTime(p, &line->time_us) || !Expect(p, ',')) {
    return nullptr;
  }
  if (*p == 'a' && ExpectWord(p, "allocate,")) {
    line->action = RmmCsvAction::kAllocate;
  } else if (*p == 'f' && ExpectWord(p, "free,")) {
    line->action = RmmCsvAction::kFree;
  } else {
    return nullptr;
  }
  SkipHexPrefix(p);
  if (!ReadHex(p, &line->pointer) || !Expect(p, ',') ||
      !ReadDecimal(p, kMaxDecimalDigits, &line->size) || !Expect(p, ',')) {
    return nullptr;
  }
  const bool stream_ok = SkipHexPrefix(p) ? ReadHex(p, &line->stream)
                                          : ReadDecimal(p, kMaxDecimalDigits, &line->stream);
  if (!stream_ok) return nullptr;
  if (*p == '\r') ++p;
  if (*p == '\n') return p + 1;
  return nullptr;  // anything else (hex letters in a stream, blanks, a 7th field): the slow path
}

absl::StatusOr<RmmCsvLine> ParseRmmCsvLine(absl::string_view line) {
  std::array<absl::string_view, kNumFields> fields;
  std::size_t count = 0;
  std::size_t field_start = 0;
  for (std::size_t i = 0; i <= line.size(); ++i) {
    if (i == line.size() || line[i] == ',') {
      if (count < kNumFields) {
        fields[count] = absl::StripAsciiWhitespace(line.substr(field_start, i - field_start));
      }
      ++count;
      field_start = i + 1;
    }
  }
  if (count != kNumFields) {
    return absl::InvalidArgumentError(
        absl::StrFormat("expected %d comma-separated fields but found %d in \"%s\"", kNumFields,
                        count, Excerpt(line)));
  }
  RmmCsvLine parsed;
  const absl::string_view action = fields[2];
  if (action == "allocate") {
    parsed.action = RmmCsvAction::kAllocate;
  } else if (action == "free") {
    parsed.action = RmmCsvAction::kFree;
  } else if (action == "allocate failure") {
    parsed.action = RmmCsvAction::kAllocateFailure;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "unknown action \"", Excerpt(action), "\" (expected allocate, free or allocate failure)"));
  }
  const std::optional<std::uint64_t> thread = ParseUnsigned(fields[0], 10);
  if (!thread) return BadField("thread", fields[0], "a decimal thread id");
  const std::optional<std::int64_t> time = ParseTime(fields[1]);
  if (!time) return BadField("time", fields[1], "HH:MM:SS.ffffff");
  const std::optional<std::uint64_t> pointer = ParsePointer(fields[3]);
  if (!pointer) return BadField("pointer", fields[3], "a hex address such as 0x7f00a000");
  const std::optional<std::uint64_t> size = ParseUnsigned(fields[4], 10);
  if (!size) return BadField("size", fields[4], "a decimal byte count");
  const std::optional<std::uint64_t> stream = ParseStream(fields[5]);
  if (!stream) return BadField("stream", fields[5], "a decimal or hex stream handle");
  parsed.thread = *thread;
  parsed.time_us = *time;
  parsed.pointer = *pointer;
  parsed.size = *size;
  parsed.stream = *stream;
  return parsed;
}

}  // namespace vramcache
