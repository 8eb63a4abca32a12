// The configuration vramcache runs with in a benchmark: the default one (on the benchmark's own
// simulated device, without the structural check after every call), with what
// vramcache-bench's --vramcache_conf=STRING sets on top, in VRAMCACHE_CONF's syntax and read by
// the allocator's own parser (allocator/api/config_parser.h), for tuning measurements
// (docs/tuning.md, docs/benchmarks.md). The peers ignore it.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "allocator/core/config.h"

namespace vramcache::bench {

// Reads one command-line argument. Returns true when `arg` is --vramcache_conf=..., with
// `*status` its error: the parser's InvalidArgument for a bad key or value, and
// InvalidArgument for the device and sim_* keys, which a benchmark cannot honour (each peer
// runs on the simulated device the benchmark makes for it). False for any other argument.
bool ParseVramcacheBenchFlag(absl::string_view arg, absl::Status* status);

// The configuration every vramcache allocator of the run is made with.
AllocatorConfig VramcacheBenchConfig();
// The --vramcache_conf string as given (empty without the flag), for the run's context, so
// every result says what it was measured with.
const std::string& VramcacheBenchConf();

}  // namespace vramcache::bench
