// The shared allocation traces (bench/traces/*.csv) the mixed_sizes, cold_start and replay
// scenarios draw on: listed at registration, each parsed once on first use and then shared, so
// a run filtered to other scenarios never reads them.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "allocator/trace/trace.h"

namespace vramcache::bench {

// Where the traces are; main sets it once from --trace_dir or the source tree's bench/traces.
void SetTraceDirectory(std::string directory);
std::string TraceDirectory();

// The traces' names (file names without .csv), sorted; empty when the directory has none.
std::vector<std::string> ListTraceNames();

// The parsed trace `name`; NotFound for a name ListTraceNames does not know, the reader's error
// for a malformed file. Thread-safe; the trace lives until the process exits.
absl::StatusOr<const Trace*> LoadTrace(const std::string& name);

}  // namespace vramcache::bench
