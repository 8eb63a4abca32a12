// The snapshot of vramcache.h's C structs (vramcache_snapshot_take): the core's Snapshot() and
// History() copied field by field, owned by a holder that the C ABI hands out and takes back.
#pragma once

#include <memory>
#include <vector>

#include "allocator/api/vramcache.h"
#include "allocator/core/caching_allocator.h"

namespace vramcache {

// Owns the arrays `view` points into; `view` is what C callers see.
struct SnapshotHolder {
  vramcache_snapshot view{};
  std::vector<vramcache_segment_info> segments;
  std::vector<vramcache_block_info> blocks;
  std::vector<vramcache_trace_entry> traces;
};

// `allocators` in device order; traces only with `include_traces`.
std::unique_ptr<SnapshotHolder> TakeSnapshot(const std::vector<CachingAllocator*>& allocators,
                                             bool include_traces);

// Keeps `holder` alive until TakeBack(its view); thread-safe.
const vramcache_snapshot* HandOut(std::unique_ptr<SnapshotHolder> holder);
// Frees what HandOut kept; false (nothing freed) for a pointer it did not hand out or one
// already taken back, so a C caller's double release is an error and not a double free.
bool TakeBack(const vramcache_snapshot* view);

}  // namespace vramcache
