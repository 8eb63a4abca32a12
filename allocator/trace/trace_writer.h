// Writes a Trace as RMM's replay CSV (the format trace_reader.h reads), so traces synthesized
// or filtered here can be replayed by RMM's tools and ours alike.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "allocator/trace/trace.h"

namespace vramcache {

// Header line, then one line per event: decimal thread and size, HH:MM:SS.ffffff time, pointer
// as 0x-prefixed hex, decimal stream. Reading the result back gives the same events and tables.
std::string FormatRmmCsv(const Trace& trace);

// Writes FormatRmmCsv(trace) to `path`, replacing it; errors name the path and the reason.
absl::Status WriteRmmCsvFile(const Trace& trace, const std::string& path);

}  // namespace vramcache
