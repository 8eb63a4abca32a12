// Recounts an allocator's statistics from outside it, for the randomized tests: from the
// caller's own list of live allocations, the allocator's snapshot (its blocks; in
// virtual-memory mode the mapped runs of pages), and the simulated device's live objects. None
// of it reads the counters being checked, so a counter updated in the wrong place, twice, or
// not at all shows up as a difference.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "allocator/core/caching_allocator.h"
#include "allocator/device/sim_device.h"

namespace vramcache {

struct RecountedAllocation {
  void* ptr = nullptr;
  std::size_t requested = 0;
};

// What the recount may assume about the run, which the snapshot alone cannot tell.
struct RecountScope {
  // No graph pools and no capture: pages are in use only under active or reuse-cached blocks.
  bool no_graphs = true;
  // The device is used by this allocator only (its held bytes, live objects and device
  // synchronizations are ours; with debug modes the guard also synchronizes: set false).
  bool device_is_ours = true;
  // Requests that failed with out-of-memory since the allocator was created (-1: not counted).
  std::int64_t out_of_memory_failures = -1;
};

// Empty when every statistic's current value equals its recount (and every peak is at least
// its current value); otherwise one line per difference. Call only when no operation is in
// flight.
std::vector<std::string> RecountDifferences(const CachingAllocator& allocator,
                                            const SimDevice& device,
                                            const std::vector<RecountedAllocation>& live,
                                            RecountScope scope = {});

}  // namespace vramcache
