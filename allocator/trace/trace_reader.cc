// The RMM CSV reader: the header, then each line through the fast canonical parser or, when that
// declines, the general one; every line goes into a TraceBuilder, which checks consistency.
#include "allocator/trace/trace_reader.h"

#include <cstring>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "allocator/core/size_classes.h"
#include "allocator/trace/file_contents.h"
#include "allocator/trace/rmm_csv_line.h"
#include "allocator/trace/trace_builder.h"

namespace vramcache {
namespace {

class RmmCsvParser {
 public:
  RmmCsvParser(absl::string_view text, absl::string_view source)
      : text_(text), source_(source), builder_(std::string(source)) {}

  absl::StatusOr<Trace> Parse() {
    // Most lines are ~45 bytes; reserving avoids regrowing a vector of 100k events.
    builder_.Reserve(text_.size() / 40 + 1);
    const char* cursor = text_.data();
    const char* const end = cursor + text_.size();
    bool saw_header = false;
    // Lines that start before the last newline end with one, as the fast parser requires; a
    // last line without a newline goes through the general parser.
    const char* fast_end = cursor;
    for (const char* p = end; p > cursor; --p) {
      if (p[-1] == '\n') {
        fast_end = p;
        break;
      }
    }
    RmmCsvLine parsed;
    while (cursor < end) {
      ++line_number_;
      if (saw_header && cursor < fast_end) {
        if (const char* next = TryParseCanonicalRmmCsvLine(cursor, &parsed)) {
          if (absl::Status status = Apply(parsed); !status.ok()) return status;
          cursor = next;
          continue;
        }
      }
      const void* newline = std::memchr(cursor, '\n', static_cast<std::size_t>(end - cursor));
      const char* const line_end = newline != nullptr ? static_cast<const char*>(newline) : end;
      absl::string_view line(cursor, static_cast<std::size_t>(line_end - cursor));
      cursor = line_end == end ? end : line_end + 1;
      if (line_number_ == 1 && absl::StartsWith(line, "\xEF\xBB\xBF")) line.remove_prefix(3);
      if (absl::StripAsciiWhitespace(line).empty()) continue;
      if (!saw_header) {
        if (absl::StripAsciiWhitespace(line) != kRmmCsvHeader) {
          return Error(absl::StrCat("expected the header \"", kRmmCsvHeader, "\" but found \"",
                                    ExcerptForMessage(line), "\""));
        }
        saw_header = true;
        continue;
      }
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      absl::StatusOr<RmmCsvLine> general = ParseRmmCsvLine(line);
      if (!general.ok()) return Error(general.status().message());
      if (absl::Status status = Apply(*general); !status.ok()) return status;
    }
    if (!saw_header) {
      return absl::InvalidArgumentError(
          absl::StrCat(source_, ": empty: no header \"", kRmmCsvHeader, "\""));
    }
    return std::move(builder_).Finish();
  }

 private:
  absl::Status Apply(const RmmCsvLine& line) {
    const TraceEventOrigin origin{
        .stream = line.stream, .thread = line.thread, .time_us = line.time_us};
    absl::Status status;
    if (line.action == RmmCsvAction::kAllocate && line.size > kMaxRequestSize) {
      // The allocator would refuse it too, but only the reader knows the line.
      return Error(absl::StrFormat(
          "size %d of pointer 0x%x is larger than any device (at most %d bytes, 2^48)", line.size,
          line.pointer, kMaxRequestSize));
    }
    switch (line.action) {
      case RmmCsvAction::kAllocate:
        status = builder_.Allocate(line.pointer, line.size, origin);
        break;
      case RmmCsvAction::kFree:
        status = builder_.Free(line.pointer, line.size, origin);
        break;
      case RmmCsvAction::kAllocateFailure:
        builder_.AllocateFailure(line.pointer);
        break;
    }
    if (!status.ok()) return Error(status.message());
    return absl::OkStatus();
  }

  absl::Status Error(absl::string_view what) const {
    return absl::InvalidArgumentError(absl::StrCat(source_, ":", line_number_, ": ", what));
  }

  absl::string_view text_;
  absl::string_view source_;
  TraceBuilder builder_;
  std::size_t line_number_ = 0;
};

}  // namespace

absl::StatusOr<Trace> ParseRmmCsv(absl::string_view text, absl::string_view source) {
  return RmmCsvParser(text, source).Parse();
}

absl::StatusOr<Trace> ReadRmmCsvFile(const std::string& path) {
  absl::StatusOr<FileContents> contents = FileContents::Read(path);
  if (!contents.ok()) return contents.status();
  return ParseRmmCsv(contents->view(), path);
}

}  // namespace vramcache
