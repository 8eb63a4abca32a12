// One data line of RMM's replay CSV (Thread,Time,Action,Pointer,Size,Stream), parsed two ways:
// a fast path for lines in the exact form RMM and our writer produce, and a general path that
// accepts every spelling the format allows and says precisely what is wrong with a bad line.
// The reader tries the fast path first and falls back, so both must agree on what they accept.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace vramcache {

enum class RmmCsvAction : std::uint8_t { kAllocate, kFree, kAllocateFailure };

struct RmmCsvLine {
  std::uint64_t thread = 0;
  std::int64_t time_us = 0;
  RmmCsvAction action = RmmCsvAction::kAllocate;
  std::uint64_t pointer = 0;
  std::uint64_t size = 0;
  std::uint64_t stream = 0;

  friend bool operator==(const RmmCsvLine&, const RmmCsvLine&) = default;
};

// Parses the line starting at `begin` if it has the canonical form: no spaces, decimal thread,
// size and stream (or 0x-hex stream), HH:MM:SS.f{1,6} time, action allocate or free, pointer in
// hex with an optional 0x. The line must end with '\n' ("\r\n" too) inside the buffer: the
// parser relies on it instead of checking bounds. Returns where the next line starts, or nullptr
// when the line is anything else; then nothing is known about it.
const char* TryParseCanonicalRmmCsvLine(const char* begin, RmmCsvLine* line);

// Parses one line (without its newline) in any accepted spelling: blanks around fields,
// pointers without 0x, hex streams without 0x, "allocate failure". InvalidArgument says what is
// wrong but not where: the reader adds the file and line.
absl::StatusOr<RmmCsvLine> ParseRmmCsvLine(absl::string_view line);

// Text from a trace as an error message quotes it: at most 80 bytes (then "..."), control bytes,
// quotes and backslashes C-escaped ("\000"), so a NUL or a terminal escape in a file is never
// echoed raw.
std::string ExcerptForMessage(absl::string_view text);

}  // namespace vramcache
