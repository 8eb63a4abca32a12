// Readers and writers for the values of configuration keys: whole numbers, decimal numbers,
// booleans, byte sizes, sizes-or-fractions and named choices. Each writer's text reads back,
// through its reader, as the value written (the round trip DescribeConfig relies on). Readers
// return nullopt, or an InvalidArgument with a short reason ("unknown unit \"xb\""), which the
// key table wraps with the variable, key and allowed values.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace vramcache::config_values {

// A short reason for a bad value (InvalidArgument), to be wrapped by the caller.
absl::Status BadValue(std::string_view why);

// ASCII lower case.
std::string Lower(std::string_view text);
// Non-empty and only '0'-'9'.
bool AllDigits(std::string_view text);

// Decimal digits only, at most 2^64 - 1.
std::optional<std::uint64_t> ReadUnsigned(std::string_view text);

// A finite decimal number as std::from_chars reads it ("0.5", "5e-1", "-1"; no leading '+').
std::optional<double> ReadNumber(std::string_view text);
// The shortest text that reads back as the same double, never a bare integer ("1.0", not "1"),
// so a fraction is not read as a byte count.
std::string FormatNumber(double value);

// vramcache's spellings (true/false, on/off, yes/no, 1/0, any case), or with
// `pytorch_spelling_only` PyTorch's (True / False, exactly).
std::optional<bool> ReadBool(std::string_view text, bool pytorch_spelling_only);
// "true"/"false", or PyTorch's "True"/"False".
std::string_view BoolText(bool value, bool pytorch_spelling);

// "4096", "2MiB", "1.5GiB", "24 GB": binary units whatever the spelling, exact (no fraction of a
// byte), at most 2^64 - 1.
absl::StatusOr<std::size_t> ReadSize(std::string_view text);
// The largest binary unit that divides `bytes` ("3GiB", "1536MiB"), else the plain number.
std::string FormatSize(std::size_t bytes);

// A size > 0 or, written as a non-integer number without a unit (0.5, 1.0, 5e-1), a fraction in
// (0, 1]: exactly one of the two is set.
struct SizeOrFraction {
  std::optional<std::size_t> bytes;
  std::optional<double> fraction;
};
absl::StatusOr<SizeOrFraction> ReadSizeOrFraction(std::string_view text);
// The byte form when set, else the fraction when > 0, else "none".
std::string FormatSizeOrFraction(std::optional<std::size_t> bytes, std::optional<double> fraction);

// A named value of an enum-like setting. One array per setting is both what is parsed (any
// case) and what is printed, and spells the allowed values in messages.
template <typename Value>
struct Choice {
  std::string_view name;  // lower case
  Value value;
};

template <typename Value, std::size_t N>
std::optional<Value> ReadChoice(std::string_view text,
                                const std::array<Choice<Value>, N>& choices) {
  const std::string lower = Lower(text);
  for (const Choice<Value>& choice : choices) {
    if (lower == choice.name) return choice.value;
  }
  return std::nullopt;
}

// The name of `value`; the last choice's when none matches (every array covers its enum).
template <typename Value, std::size_t N>
std::string_view ChoiceText(Value value, const std::array<Choice<Value>, N>& choices) {
  for (const Choice<Value>& choice : choices) {
    if (choice.value == value) return choice.name;
  }
  return choices.back().name;
}

// "a, b or c".
template <typename Value, std::size_t N>
std::string ChoiceList(const std::array<Choice<Value>, N>& choices) {
  std::string list;
  for (std::size_t i = 0; i < N; ++i) {
    if (i > 0) list += i + 1 == N ? " or " : ", ";
    list += choices[i].name;
  }
  return list;
}

}  // namespace vramcache::config_values
