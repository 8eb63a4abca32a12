// The allocator's components in segment mode, wired as the facade wires them
// (allocator_components.h) but without it: for the suites of the components that work on all
// the others (the block lifecycle, the queries), which build their state through the
// components' own steps. Invariants are checked after every step; the reuse cache holds 256
// MiB. A segment is adopted as growth adopts it (counted, its block free); the teardown forgets
// every block and gives the segments' memory back to the simulated device.
#pragma once

#include <cstddef>

#include "allocator/core/allocator_components.h"
#include "allocator/core/config.h"
#include "allocator/core/debug_guard.h"
#include "allocator/device/sim_device.h"

namespace vramcache {

// What the components are built over, made before them (a base class of SegmentModeParts).
struct SegmentModeSetting {
  static AllocatorConfig SegmentModeConfig() {
    AllocatorConfig config;
    config.vmm = VmmMode::kOff;
    config.check_invariants = true;
    config.reuse_cache_bytes = 256 * kMiB;
    return config;
  }
  explicit SegmentModeSetting(const SimDeviceOptions& options) : device(options) {}

  SimDevice device;
  AllocatorConfig config = SegmentModeConfig();
  TickClock clock;
  DebugGuard guard{&device, config};
};

struct SegmentModeParts : SegmentModeSetting, AllocatorComponents {
  explicit SegmentModeParts(const SimDeviceOptions& options = {})
      : SegmentModeSetting(options), AllocatorComponents(&device, config, &clock, &guard) {}
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
  // A block of `request` bytes handed out on `stream` from a new segment of `segment_size`
  // bytes of its own, as the slow path hands one out; null when that fails.
  Block* AllocateFromNewSegment(std::size_t request, StreamHandle stream,
                                std::size_t segment_size = 20 * kMiB) {
    AdoptSegment(segment_size, stream);
    Block* block = placement.FindFreeBlock(false, kDefaultPool, stream, request);
    if (block == nullptr) return nullptr;
    if (!lifecycle.FinishAllocation(block, request, request, stream).ok()) return nullptr;
    return block;
  }
  // The user's free, as the facade makes it, of a block that does not enter the reuse cache.
  absl::Status FreeNotCached(Block* block) {
    ledger.CountUserFree(*block);
    allocated_or_cached.erase(block->addr);
    return lifecycle.EndUserFree(block);
  }
};

}  // namespace vramcache
