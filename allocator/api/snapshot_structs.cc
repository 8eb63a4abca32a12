// Copies the core's snapshot into vramcache.h's C structs, and keeps the copies handed out. The
// switches name every core state and action, so a new one fails the build (-Wswitch) instead of
// reaching C callers mislabelled.
#include "allocator/api/snapshot_structs.h"

#include <utility>

#include "absl/container/flat_hash_map.h"
#include "allocator/base/mutex.h"

namespace vramcache {
namespace {

struct HandedOut {
  Mutex mu;
  absl::flat_hash_map<const vramcache_snapshot*, std::unique_ptr<SnapshotHolder>> holders
      ABSL_GUARDED_BY(mu);
};

// Never destroyed: a snapshot may be released during static destruction.
HandedOut& Live() {
  static HandedOut* live = new HandedOut();
  return *live;
}

int CState(BlockState state) {
  switch (state) {
    case BlockState::kFree:
      return VRAMCACHE_BLOCK_FREE;
    case BlockState::kAllocated:
      return VRAMCACHE_BLOCK_ALLOCATED;
    case BlockState::kPendingFree:
      return VRAMCACHE_BLOCK_PENDING_FREE;
    case BlockState::kCached:
      return VRAMCACHE_BLOCK_CACHED;
    case BlockState::kParked:
      return VRAMCACHE_BLOCK_PARKED;
  }
  return VRAMCACHE_BLOCK_FREE;
}

int CAction(TraceAction action) {
  switch (action) {
    case TraceAction::kAlloc:
      return VRAMCACHE_TRACE_ALLOC;
    case TraceAction::kFreeRequested:
      return VRAMCACHE_TRACE_FREE_REQUESTED;
    case TraceAction::kFreeCompleted:
      return VRAMCACHE_TRACE_FREE_COMPLETED;
    case TraceAction::kSegmentAlloc:
      return VRAMCACHE_TRACE_SEGMENT_ALLOC;
    case TraceAction::kSegmentFree:
      return VRAMCACHE_TRACE_SEGMENT_FREE;
    case TraceAction::kOom:
      return VRAMCACHE_TRACE_OOM;
  }
  return VRAMCACHE_TRACE_OOM;
}

void* AsPointer(StreamHandle stream) { return reinterpret_cast<void*>(stream); }

}  // namespace

std::unique_ptr<SnapshotHolder> TakeSnapshot(const std::vector<CachingAllocator*>& allocators,
                                             bool include_traces) {
  auto holder = std::make_unique<SnapshotHolder>();
  for (CachingAllocator* allocator : allocators) {
    const int device = allocator->device()->Capabilities().ordinal;
    for (const SegmentInfo& segment : allocator->Snapshot()) {
      holder->segments.push_back({device, segment.base, segment.size, AsPointer(segment.stream),
                                  segment.small ? 1 : 0, holder->blocks.size(),
                                  segment.blocks.size()});
      for (const BlockInfo& block : segment.blocks) {
        const bool allocated = block.state == BlockState::kAllocated;
        holder->blocks.push_back({block.addr, block.size, allocated ? block.requested : 0,
                                  CState(block.state), block.pool});
      }
    }
    if (!include_traces) continue;
    for (const TraceEntry& entry : allocator->History()) {
      holder->traces.push_back({device, CAction(entry.action), entry.addr, entry.size,
                                AsPointer(entry.stream), entry.time_ns});
    }
  }
  holder->view = {VRAMCACHE_SNAPSHOT_VERSION, holder->segments.size(), holder->segments.data(),
                  holder->blocks.size(),      holder->blocks.data(),   holder->traces.size(),
                  holder->traces.data()};
  return holder;
}

const vramcache_snapshot* HandOut(std::unique_ptr<SnapshotHolder> holder) {
  const vramcache_snapshot* view = &holder->view;
  HandedOut& live = Live();
  MutexLock lock(&live.mu);
  live.holders.emplace(view, std::move(holder));
  return view;
}

bool TakeBack(const vramcache_snapshot* view) {
  std::unique_ptr<SnapshotHolder> holder;
  {
    HandedOut& live = Live();
    MutexLock lock(&live.mu);
    auto it = live.holders.find(view);
    if (it == live.holders.end()) return false;
    holder = std::move(it->second);
    live.holders.erase(it);
  }
  return true;  // holder is freed here, outside the lock
}

}  // namespace vramcache
