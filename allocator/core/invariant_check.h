// The invariant recount: rebuilds the allocator's structure and statistics from its blocks and
// compares them with what it keeps (config check_invariants, Debug builds, tests). Read-only;
// it sees the allocator's state through a view of const references, taken with its lock held.
#pragma once

#include <cstddef>
#include <cstdint>

#include "absl/container/btree_map.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "allocator/core/block.h"
#include "allocator/core/reuse_cache.h"
#include "allocator/core/stats.h"
#include "allocator/core/stats_ledger.h"  // WholePagesOf

namespace vramcache {

class ChunkPool;

// What the recount reads; every reference is owned by the allocator and guarded by its lock.
struct AllocatorStateView {
  const absl::btree_map<DevicePtr, Segment*>& segments;
  const FreeBlockSet& small_free;
  const FreeBlockSet& large_free;
  // The pointer map: allocated blocks and blocks waiting in the reuse cache, by address.
  const absl::flat_hash_map<DevicePtr, Block*>& allocated_or_cached;
  // Virtual-memory mode's large segments by rank (the first-fit search order).
  const absl::btree_map<std::uint64_t, Segment*>& first_fit_segments;
  const ReuseCache& reuse_cache;
  const ChunkPool* vmm;  // null in segment mode
  const DeviceStats& stats;
};

// OK, or InternalError naming the first structure or statistic that disagrees with the blocks.
absl::Status CheckAllocatorInvariants(const AllocatorStateView& state);

}  // namespace vramcache
