// The vramcache settings a benchmark run may change from the default configuration, for the
// tuning measurements of docs/tuning.md and docs/benchmarks.md: vramcache-bench's
// --vramcache_reuse_cache=BYTES and --vramcache_cross_stream=none|query|wait. The adapter
// (vramcache_sim_adapter.h) applies them to every allocator it makes; the peers ignore them.
#pragma once

#include <cstddef>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "allocator/core/config.h"

namespace vramcache::bench {

struct VramcacheBenchSettings {
  std::optional<std::size_t> reuse_cache_bytes;
  std::optional<CrossStreamPolicy> cross_stream;
};

// Reads one command-line argument. Returns true when `arg` was one of the flags above (with
// `*status` its error, InvalidArgument for a bad value), false when it is none of them.
bool ParseVramcacheBenchFlag(absl::string_view arg, absl::Status* status);

// What the flags read so far set; applied by the adapter to its configuration.
const VramcacheBenchSettings& GetVramcacheBenchSettings();
void ApplyVramcacheBenchSettings(AllocatorConfig& config);
// "reuse_cache=8388608 cross_stream=none": what the flags changed, for the run's context (empty
// when nothing changed), so every result says the settings it was measured with.
std::string DescribeVramcacheBenchSettings();

}  // namespace vramcache::bench
