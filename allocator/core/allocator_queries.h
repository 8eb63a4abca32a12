// The allocator's answers about what it holds, read under its lock and changing nothing: the
// statistics with the settings in use, a live allocation's size, the segment holding an address
// (and the error naming it for a pointer that is no live allocation), the largest allocation
// that could succeed, the snapshot, and the invariant recount (invariant_check.h) over every
// structure. A plain class called with the allocator's lock held, as the chunk pool is.
#pragma once

#include <cstddef>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "allocator/core/backing.h"
#include "allocator/core/block.h"
#include "allocator/core/block_heap.h"
#include "allocator/core/caching_allocator.h"
#include "allocator/core/growth_limits.h"
#include "allocator/core/reuse_cache.h"
#include "allocator/core/runtime_settings.h"
#include "allocator/core/stats.h"
#include "allocator/core/vmm_arena.h"
#include "allocator/device/device.h"

namespace vramcache {

class AllocatorQueries {
 public:
  // What the answers read; all must outlive the queries. `chunks` is null in segment mode.
  struct Parts {
    const absl::flat_hash_map<DevicePtr, Block*>* allocated_or_cached = nullptr;
    const BlockHeap* heap = nullptr;
    const ReuseCache* reuse_cache = nullptr;
    const Backing* backing = nullptr;
    const ChunkPool* chunks = nullptr;
    const GrowthLimits* limits = nullptr;
    const RuntimeSettings* settings = nullptr;
    const DeviceStats* stats = nullptr;
    Device* device = nullptr;     // free memory, for the largest allocation; the ordinal
    std::size_t front_bytes = 0;  // canaries' front band: user pointer = block + this
  };

  explicit AllocatorQueries(const Parts& parts) : p_(parts) {}

  // The statistics, with what the settings and limits in use say (max_split_size, budget) and
  // the address space reserved.
  DeviceStats Stats() const;
  // The size the user asked for at `user_ptr`; NotFound when it is no live allocation.
  absl::StatusOr<std::size_t> AllocationSize(DevicePtr user_ptr) const;
  // What AllocationSize says of a pointer that is not live.
  static absl::Status NotLiveError(DevicePtr user_ptr);
  // The segment holding `addr` (base and size); NotFound when none does.
  absl::StatusOr<std::pair<DevicePtr, std::size_t>> BaseAllocation(DevicePtr addr) const;
  // `operation` ("free", "record_stream") was given `addr`, which is no live allocation: a
  // double free or a pointer into a segment, or one vramcache never handed out.
  absl::Status UnknownPointerError(const char* operation, DevicePtr addr) const;
  // The largest allocation that could succeed now (what PyTorch's cacheInfo means: device free
  // memory or the largest cached block, whichever is larger); the backing says which.
  std::size_t LargestFreeBlock() const;
  // Every segment as memory_viz shows it (the backing says how), in address order.
  std::vector<SegmentInfo> Snapshot() const;

  // The invariant recount over every structure: OK, or InternalError naming what disagrees.
  absl::Status CheckInvariants() const;
  // Aborts with the recount's message when it fails (after an allocation, in Debug builds).
  void CheckInvariantsOrDie() const;

 private:
  // The segment whose range holds `addr`; null when none does.
  const Segment* SegmentHolding(DevicePtr addr) const;

  const Parts p_;
};

}  // namespace vramcache
