// The value readers and writers of the configuration (see config_values.h).
#include "allocator/api/config_values.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <system_error>
#include <utility>

#include "absl/strings/str_format.h"
#include "allocator/api/config_syntax.h"

namespace vramcache::config_values {
namespace {

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

}  // namespace

absl::Status BadValue(std::string_view why) {
  return absl::InvalidArgumentError(absl::string_view(why.data(), why.size()));
}

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

absl::StatusOr<std::size_t> ReadSize(std::string_view text) {
  std::size_t number_end = 0;
  while (number_end < text.size() &&
         ((text[number_end] >= '0' && text[number_end] <= '9') || text[number_end] == '.')) {
    ++number_end;
  }
  const std::string_view number = text.substr(0, number_end);
  if (number.empty()) return BadValue("not a number");
  const std::string unit = Lower(TrimConfigSpace(text.substr(number_end)));
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

std::string FormatNumber(double value) {
  std::string text;
  for (int precision = 1; precision <= 17; ++precision) {
    text = absl::StrFormat("%.*g", precision, value);
    if (ReadNumber(text) == value) break;
  }
  if (AllDigits(text)) text += ".0";
  return text;
}

std::string_view BoolText(bool value, bool pytorch_spelling) {
  if (pytorch_spelling) return value ? "True" : "False";
  return value ? "true" : "false";
}

std::string FormatSizeOrFraction(std::optional<std::size_t> bytes, std::optional<double> fraction) {
  if (bytes.has_value()) return FormatSize(*bytes);
  if (fraction.has_value() && *fraction > 0.0) return FormatNumber(*fraction);
  return "none";
}

}  // namespace vramcache::config_values
