// The allocator's components in segment mode, wired as the facade wires them but without it:
// for the suites of the components that work on all the others (the block lifecycle, the
// queries), which build their state through the components' own steps. A segment is adopted
// as growth adopts it (counted, its block free); the teardown forgets every block and gives the
// segments' memory back to the simulated device.
#pragma once

#include <cstddef>

#include "absl/container/flat_hash_map.h"
#include "allocator/core/allocation_history.h"
#include "allocator/core/allocator_queries.h"
#include "allocator/core/block_heap.h"
#include "allocator/core/block_lifecycle.h"
#include "allocator/core/config.h"
#include "allocator/core/graph_pools.h"
#include "allocator/core/growth_limits.h"
#include "allocator/core/placement.h"
#include "allocator/core/reuse_cache.h"
#include "allocator/core/runtime_settings.h"
#include "allocator/core/segment_backing.h"
#include "allocator/core/stats_ledger.h"
#include "allocator/core/stream_ordered_frees.h"
#include "allocator/device/sim_device.h"

namespace vramcache {

struct SegmentModeParts {
  explicit SegmentModeParts(const SimDeviceOptions& options = {}) : device(options) {}
  ~SegmentModeParts() {
    for (EventHandle event : frees.ForgetAll()) device.DestroyEvent(event).IgnoreError();
    for (Segment* segment : lifecycle.ForgetAll()) {
      device.Free(segment->base).IgnoreError();
      delete segment;
    }
  }

  // A segment of `size` bytes from the device, adopted as growth adopts one: counted, its one
  // block free for `stream`.
  Segment* AdoptSegment(std::size_t size, StreamHandle stream, bool small = false) {
    Segment* segment = heap.Adopt(device.Malloc(size).value(), size, small, stream, kDefaultPool);
    ledger.CountSegmentAdopted(*segment);
    heap.AddFreeBlock(segment->head);
    return segment;
  }

  SimDevice device;
  AllocatorConfig config;
  DeviceStats stats;
  StatsLedger ledger{&stats, /*max_split_size=*/SIZE_MAX};
  TickClock clock;
  BlockHeap heap{&ledger, &clock, /*first_fit_large=*/false};
  RuntimeSettings settings = RuntimeSettings::Of(config);
  Placement placement{&heap, &settings, /*virtual_memory=*/false};
  GrowthLimits limits{config, device.Capabilities().total_bytes};
  SegmentBacking backing{&stats, &ledger, &limits, &heap.small_free(), &heap.large_free()};
  ReuseCache reuse_cache{256 * kMiB};
  GraphPools graph_pools{&device};
  absl::flat_hash_map<DevicePtr, Block*> allocated_or_cached;
  AllocationHistory history{config, &clock};
  StreamOrderedFrees frees{&device, &heap, &ledger,
                           [this](Block* block) { lifecycle.CompletePendingFree(block); }};
  AllocatorQueries queries{AllocatorQueries::Parts{
      .allocated_or_cached = &allocated_or_cached,
      .heap = &heap,
      .reuse_cache = &reuse_cache,
      .backing = &backing,
      .chunks = nullptr,
      .limits = &limits,
      .settings = &settings,
      .stats = &stats,
      .device = &device,
      .front_bytes = 0,
  }};
  BlockLifecycle lifecycle{BlockLifecycle::Parts{
      .allocated_or_cached = &allocated_or_cached,
      .heap = &heap,
      .placement = &placement,
      .ledger = &ledger,
      .reuse_cache = &reuse_cache,
      .backing = &backing,
      .graph_pools = &graph_pools,
      .frees = &frees,
      .history = &history,
      .debug = nullptr,
      .queries = &queries,
      .stats = &stats,
      .front_bytes = 0,
      .check_invariants = true,
  }};
};

}  // namespace vramcache
