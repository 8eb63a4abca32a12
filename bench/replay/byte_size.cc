// Byte-size parsing for command-line flags.
#include "bench/replay/byte_size.h"

#include <cmath>
#include <cstdint>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace vramcache {
namespace {

struct Unit {
  const char* name;
  int shift;
};

constexpr Unit kUnits[] = {
    {"", 0},     {"b", 0},  {"k", 10},  {"kb", 10},  {"kib", 10}, {"m", 20},  {"mb", 20},
    {"mib", 20}, {"g", 30}, {"gb", 30}, {"gib", 30}, {"t", 40},   {"tb", 40}, {"tib", 40},
};

absl::Status BadSize(absl::string_view text, absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("bad size \"", text, "\": ", why,
                   " (expected bytes, or a number with a unit: 3GiB, 1.5GiB, 512MiB, 64KiB)"));
}

}  // namespace

absl::StatusOr<std::size_t> ParseByteSize(absl::string_view text) {
  const absl::string_view trimmed = absl::StripAsciiWhitespace(text);
  std::size_t number_end = 0;
  while (number_end < trimmed.size() &&
         (absl::ascii_isdigit(static_cast<unsigned char>(trimmed[number_end])) ||
          trimmed[number_end] == '.')) {
    ++number_end;
  }
  const absl::string_view number = trimmed.substr(0, number_end);
  const std::string unit =
      absl::AsciiStrToLower(absl::StripAsciiWhitespace(trimmed.substr(number_end)));
  if (number.empty()) return BadSize(text, "no number");
  int shift = -1;
  for (const Unit& candidate : kUnits) {
    if (unit == candidate.name) shift = candidate.shift;
  }
  if (shift < 0) return BadSize(text, absl::StrCat("unknown unit \"", unit, "\""));

  if (number.find('.') == absl::string_view::npos) {
    std::uint64_t value = 0;
    if (!absl::SimpleAtoi(number, &value)) return BadSize(text, "not a number");
    if (value > (std::uint64_t{1} << (63 - shift))) return BadSize(text, "too large");
    return static_cast<std::size_t>(value << shift);
  }
  double value = 0;
  if (!absl::SimpleAtod(number, &value) || !std::isfinite(value)) {
    return BadSize(text, "not a number");
  }
  const double bytes = std::ldexp(value, shift);
  if (bytes >= std::ldexp(1.0, 63)) return BadSize(text, "too large");
  if (bytes != std::floor(bytes)) return BadSize(text, "not a whole number of bytes");
  return static_cast<std::size_t>(bytes);
}

}  // namespace vramcache
