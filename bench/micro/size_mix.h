// A deterministic stream of request sizes drawn from the shared traces' allocation sizes (each
// trace weighted equally, each of its allocations equally within it), plus the window slot each
// step frees before it allocates. The same stream for every peer and every run.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"

namespace vramcache::bench {

// Live allocations the mixed_sizes scenario keeps; a power of two so a slot is a mask away.
inline constexpr std::size_t kMixWindow = 256;
// Steps before the stream repeats; a power of two for the same reason.
inline constexpr std::size_t kMixLength = std::size_t{1} << 16;

struct SizeMix {
  std::vector<std::size_t> sizes;    // kMixLength request sizes, none zero
  std::vector<std::uint32_t> slots;  // kMixLength window slots in [0, kMixWindow)
};

// Built from every trace ListTraceNames finds, once. FailedPrecondition when there are none,
// a trace's load error otherwise.
absl::StatusOr<const SizeMix*> SharedSizeMix();

}  // namespace vramcache::bench
