// CUDA graph pools: which private pool a request goes to while a capture is under way, how many
// graphs still use each pool, which released pools still wait for a device synchronization, and
// whether a stream captures (announced through BeginAllocateToPool, or asked of the device). A
// private pool exists because a graph's replays use the addresses its capture allocated, on any
// stream and after the blocks are freed: its memory goes to nobody else until the pool is
// released, and in virtual-memory mode not before a device synchronization that began after the
// release. It makes no device call that can block (IsCapturing only) and frees nothing itself:
// the allocator gives a released pool's memory back through its backing.
// Not thread-safe: called with the allocator's lock held.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/container/inlined_vector.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "allocator/core/block.h"
#include "allocator/core/block_heap.h"
#include "allocator/device/device.h"

namespace vramcache {

// A CUDA graph capture that directs allocations to a private pool.
struct CaptureToPool {
  PoolId pool;
  // Which requesting streams the capture takes; null takes every stream.
  std::function<bool(StreamHandle)> filter;
};

class GraphPools {
 public:
  // `device` (asked whether a stream captures) must outlive the pools.
  explicit GraphPools(Device* device) : device_(device) {}
  GraphPools(const GraphPools&) = delete;
  GraphPools& operator=(const GraphPools&) = delete;

  // BeginAllocateToPool: requests on streams `filter` takes go to `pool` until EndCapture. Each
  // capture is one more use of the pool; a pool captured into again is no longer released.
  void BeginCapture(PoolId pool, std::function<bool(StreamHandle)> filter);
  // EndAllocateToPool: the oldest capture to `pool` ends. InvalidArgument when there is none.
  absl::Status EndCapture(PoolId pool);
  // ReleasePool: drops one use of `pool`; true when that was the last, so that the pool is
  // released now (its free memory may go back). InvalidArgument for an unknown pool.
  absl::StatusOr<bool> DropUse(PoolId pool);
  // Shutdown: every capture is forgotten (the pools' memory goes back with everything else).
  void EndAllCaptures() { captures_.clear(); }

  // The pool a request on `stream` comes from: the first capture whose filter takes it, else the
  // shared pool. Inline: the allocation fast path asks, and almost never during a capture.
  PoolId PoolFor(StreamHandle stream) const {
    return captures_.empty() ? kDefaultPool : CapturePoolFor(stream);
  }

  // Whether any capture was announced (no event may be queried, frees needing events wait).
  bool capture_under_way() const { return !captures_.empty(); }
  // Whether event queries must be avoided for a request on `stream`: an announced capture, or
  // (for callers that cannot announce one) `stream` itself capturing. Without an announced
  // capture the device is always asked, and an error counts as capturing.
  bool Capturing(StreamHandle stream);
  // Capturing, asked of the device at most once per allocation (`known` keeps the answer).
  bool KnowCapturing(std::optional<bool>& known, StreamHandle stream) {
    if (!known.has_value()) known = Capturing(stream);
    return *known;
  }
  // Whether a capture is announced or any of `streams` captures: a free used by them must wait
  // for the capture to end before it records its events.
  bool AnyCapturing(const absl::InlinedVector<StreamHandle, 2>& streams);

  // Virtual-memory mode: released `pool`'s ranges wait for a device synchronization that begins
  // after order number `order` (StreamOrderedFrees::TakeOrder): its replays may still run.
  void AwaitSynchronization(PoolId pool, std::uint64_t order) { unsynced_pools_[pool] = order; }
  // A device synchronization that began after order number `synced_through` has completed:
  // released pools up to it are free of their replays.
  void MarkSynchronized(std::uint64_t synced_through);

  // Whether free memory of `pool` may go back to the device: the shared pool's, or a released
  // private pool's (a live one's belongs to its graph's replays even when free).
  bool Releasable(PoolId pool) const {
    return pool == kDefaultPool || released_pools_.contains(pool);
  }
  // Released private pools' wholly free segments whose synchronization has completed join the
  // shared pool: listed in the heap under kDefaultPool (the address space is kept). For a
  // pinned one (virtual memory: backed whole while its pool lived), `release_pinned_range` is
  // called after it is unpinned, to release its pages.
  void RejoinSharedPool(BlockHeap& heap, absl::FunctionRef<void(Segment*)> release_pinned_range);

  // Read by the allocator's backing and trim paths.
  const absl::flat_hash_set<PoolId>& released_pools() const { return released_pools_; }
  const absl::flat_hash_map<PoolId, std::uint64_t>& unsynced_pools() const {
    return unsynced_pools_;
  }

 private:
  PoolId CapturePoolFor(StreamHandle stream) const;

  Device* const device_;
  std::vector<CaptureToPool> captures_;  // announced, in the order they began
  absl::flat_hash_map<PoolId, int> private_pool_uses_;
  absl::flat_hash_set<PoolId> released_pools_;
  // Virtual-memory mode: released pools whose ranges wait for a device synchronization, with the
  // order number of the release.
  absl::flat_hash_map<PoolId, std::uint64_t> unsynced_pools_;
};

}  // namespace vramcache
