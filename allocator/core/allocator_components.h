// Every component of one device's allocator, built and wired together once: the block heap,
// placement, the reuse cache, stream-ordered frees, stream uses, graph pools, the backing (a
// segment or a virtual-memory one, chosen here), the growth limits, the statistics and their
// ledger, the history, the debug modes' steps (only when one is on), the queries, a block's
// moves between its states and the out-of-memory rungs. It owns what they share (the pointer
// map, the runtime settings) and nothing else: no lock, no device call. The facade
// (caching_allocator.cc) holds one under its lock; the suites of the components that work on
// all the others build one over the simulated device (tests/support/segment_mode_parts.h).
#pragma once

#include <cstddef>
#include <memory>

#include "absl/container/flat_hash_map.h"
#include "allocator/core/allocation_history.h"
#include "allocator/core/allocator_queries.h"
#include "allocator/core/backing.h"
#include "allocator/core/block.h"
#include "allocator/core/block_heap.h"
#include "allocator/core/block_lifecycle.h"
#include "allocator/core/clock.h"
#include "allocator/core/config.h"
#include "allocator/core/debug_guard.h"
#include "allocator/core/debug_hooks.h"
#include "allocator/core/graph_pools.h"
#include "allocator/core/growth_limits.h"
#include "allocator/core/oom_rungs.h"
#include "allocator/core/placement.h"
#include "allocator/core/reuse_cache.h"
#include "allocator/core/runtime_settings.h"
#include "allocator/core/segment_backing.h"
#include "allocator/core/stats.h"
#include "allocator/core/stats_ledger.h"
#include "allocator/core/stream_ordered_frees.h"
#include "allocator/core/stream_uses.h"
#include "allocator/core/vmm_backing.h"
#include "allocator/device/device.h"

namespace vramcache {

// Whether an allocator with `config` on a device with `caps` backs its segments with virtual
// memory (a pass-through allocator never does: each allocation is one device allocation).
bool UsesVirtualMemory(const AllocatorConfig& config, const DeviceCapabilities& caps);

struct AllocatorComponents {
  // `device`, `clock` and `guard` must outlive the components.
  AllocatorComponents(Device* device, const AllocatorConfig& config, Clock* clock,
                      DebugGuard* guard);
  AllocatorComponents(const AllocatorComponents&) = delete;
  AllocatorComponents& operator=(const AllocatorComponents&) = delete;

  // Members in construction order: each is built from those above it.
  const bool virtual_memory;
  // What _set_allocator_settings may change (runtime_settings.h).
  RuntimeSettings settings;
  DeviceStats stats;
  StatsLedger ledger;  // writes stats
  BlockHeap heap;
  Placement placement;  // which free block serves a request
  GrowthLimits limits;  // budget, fraction, soft budget, bytes in flight
  ReuseCache reuse_cache;
  GraphPools graph_pools;  // captures and private pools
  // Allocated blocks, and blocks waiting in the reuse cache (so that reusing one needs no
  // insert), by address.
  absl::flat_hash_map<DevicePtr, Block*> allocated_or_cached;
  AllocationHistory history;  // empty unless record_history
  // Pending frees, destroyed streams, borrowing's events; a completed free comes back through
  // the block lifecycle.
  StreamOrderedFrees frees;
  StreamUses stream_uses;  // record_stream's streams, a borrower's, a destroyed stream's
  // Where the segments' memory comes from: device allocations or virtual memory. Exactly one
  // of the two typed pointers is set, to the same object.
  const std::unique_ptr<Backing> backing;
  VmmBacking* const vmm;
  SegmentBacking* const segments;
  const bool single_use_ranges;  // unmap_on_free in virtual-memory mode
  // The debug modes' steps; null unless one is on (the hot path checks this one pointer).
  const std::unique_ptr<DebugHooks> debug_hooks;
  const DebugHooks* const debug;
  AllocatorQueries queries;  // the answers read under the lock, and the invariant recount
  BlockLifecycle lifecycle;  // a block's moves between its states; the rungs' host
  OomRungs rungs;            // growth and releases, under the lock
};

}  // namespace vramcache
