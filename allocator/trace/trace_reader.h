// Reads RMM's replay log, the CSV that rmm::mr::logging_resource_adaptor writes and RMM's replay
// benchmark reads:
//
//   Thread,Time,Action,Pointer,Size,Stream
//   1,00:00:00.000105,allocate,0x29c0c480,288,0
//
// Action is allocate, free or "allocate failure" (skipped, with the later free of its pointer).
// Time is HH:MM:SS.ffffff; Pointer is hex with or without 0x (RMM has written both); Stream is
// decimal, or hex with 0x or hex letters. Blank lines and a trailing \r are ignored.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "allocator/trace/trace.h"

namespace vramcache {

inline constexpr absl::string_view kRmmCsvHeader = "Thread,Time,Action,Pointer,Size,Stream";

// Parses a whole log held in memory. `source` names it in messages ("FILE:LINE: what is
// wrong"); any malformed or inconsistent line is InvalidArgument and nothing is returned.
absl::StatusOr<Trace> ParseRmmCsv(absl::string_view text, absl::string_view source);

// Reads `path` whole and parses it. A file that cannot be read is NotFound /
// PermissionDenied / ... with the path and the system's reason.
absl::StatusOr<Trace> ReadRmmCsvFile(const std::string& path);

}  // namespace vramcache
