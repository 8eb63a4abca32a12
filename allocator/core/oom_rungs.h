// The out-of-memory ladder's rungs (ClimbOomLadder orders them, oom_ladder.h), with the growth
// and release steps they share with EmptyCache, ReleasePool and the memory fraction: a plain
// class called with the allocator's lock held, as the chunk pool is. It grows the heap (by a
// segment the facade allocated, or by a reserved range in virtual-memory mode, unmap_on_free's
// range of its own per allocation included), takes wholly free segments out of it, gives cached
// chunks back, and gathers the out-of-memory report's facts. The facade keeps the lock and makes
// every device call that can block between two of these steps: a segment's allocation (between
// BeginGrowth and ServeFromNewSegment), the frees of the segments a release detached, and the
// device synchronization after which waiting pages can give their chunks (between
// ReleaseCached or BeginEmptyCache and Synchronized or FinishEmptyCache). Virtual memory's
// growth and trimming make no blocking call and run whole here.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "allocator/core/backing.h"
#include "allocator/core/block.h"
#include "allocator/core/block_heap.h"
#include "allocator/core/caching_allocator.h"
#include "allocator/core/graph_pools.h"
#include "allocator/core/growth_limits.h"
#include "allocator/core/oom_ladder.h"
#include "allocator/core/placement.h"
#include "allocator/core/runtime_settings.h"
#include "allocator/core/segment_backing.h"
#include "allocator/core/stats.h"
#include "allocator/core/stats_ledger.h"
#include "allocator/core/stream_ordered_frees.h"
#include "allocator/core/vmm_backing.h"

namespace vramcache {

// One request that growth serves.
struct GrowthRequest {
  std::size_t size = 0;     // the user's bytes
  std::size_t rounded = 0;  // the block's
  bool small = false;
  StreamHandle stream = 0;
  PoolId pool = kDefaultPool;
  bool capturing = false;  // the stream captures a graph: no event may be queried
};

// What is left to do once a release's locked step is over.
struct CacheRelease {
  std::vector<Segment*> detached;    // segment mode: freed by the facade, without the lock
  bool synchronize = false;          // virtual memory: synchronize the device, then finish
  bool finish = false;               // EmptyCache in virtual memory: FinishEmptyCache follows
  std::uint64_t synced_through = 0;  // the order number that synchronization covers
};

class OomRungs {
 public:
  // A block's moves the rungs use, called with the allocator's lock held (BlockLifecycle,
  // block_lifecycle.h, implements them): they touch the reuse cache, the pointer map of
  // allocated and cached blocks, or the history.
  class Host {
   public:
    virtual ~Host() = default;
    // Coalesces every reuse-cache block into the heap, so that placement sees all free space.
    virtual void FlushReuseCache() = 0;
    // Carves the request out of free block `block`: its pointer, or ResourceExhausted when the
    // block's pages cannot be backed now (the block is free again).
    virtual absl::StatusOr<void*> FinishAllocation(Block* block, const GrowthRequest& request) = 0;
    // Hands `block` out as it is: already out of every free set, its pages backed.
    virtual absl::StatusOr<void*> MarkAllocated(Block* block, const GrowthRequest& request) = 0;
    // Appends an entry to the allocation history (when record_history is on).
    virtual void Record(TraceAction action, DevicePtr addr, std::size_t size,
                        StreamHandle stream) = 0;
  };

  // What the rungs work on; all must outlive them. In segment mode `vmm` is null, in
  // virtual-memory mode `segments`; `backing` is whichever is not.
  struct Parts {
    Host* host = nullptr;
    BlockHeap* heap = nullptr;
    Placement* placement = nullptr;
    StatsLedger* ledger = nullptr;
    DeviceStats* stats = nullptr;  // the counters no ledger transition owns (hits, releases)
    GrowthLimits* limits = nullptr;
    Backing* backing = nullptr;
    VmmBacking* vmm = nullptr;
    SegmentBacking* segments = nullptr;
    GraphPools* graph_pools = nullptr;
    StreamOrderedFrees* frees = nullptr;
    const RuntimeSettings* settings = nullptr;
    bool caching = true;             // false: pass-through, no block is reused
    bool single_use_ranges = false;  // unmap_on_free in virtual-memory mode
  };

  explicit OomRungs(const Parts& parts) : p_(parts) {}
  OomRungs(const OomRungs&) = delete;
  OomRungs& operator=(const OomRungs&) = delete;

  // ---------------------------------------------------------------- growth

  // A growth by `segment_size` bytes begins. Virtual memory grows here (a fitting free block in
  // address space, else a new range; unmap_on_free, a range of its own) and returns the
  // request's result. Segment mode returns a fitting block another thread freed meanwhile or
  // the budget's refusal; else nullopt, with the segment counted in flight: the facade then
  // allocates it without the lock, calls GrowthReturned, and ServeFromNewSegment if it got it.
  std::optional<absl::StatusOr<void*>> BeginGrowth(const GrowthRequest& request,
                                                   std::size_t segment_size);
  // The device allocation BeginGrowth asked for returned (whether or not it succeeded).
  void GrowthReturned(std::size_t segment_size) { p_.segments->EndGrowth(segment_size); }
  // The segment the device allocated at `base` joins the heap and serves the request.
  absl::StatusOr<void*> ServeFromNewSegment(DevicePtr base, std::size_t segment_size,
                                            const GrowthRequest& request);
  // unmap_on_free: a freed block's range is retired to kRetiredRangesPool, which no request
  // searches, and every free page whose last use has completed is unmapped now, so that a later
  // access faults (its chunk is kept for the next allocation).
  void RetireRange(Block* block);

  // ---------------------------------------------------------------- releases

  // Takes wholly free segments of the shared pool or a released private pool out of the heap,
  // least recently freed first, until `bytes_wanted` are collected (SIZE_MAX: all). Segment
  // mode's memory is then freed by the caller, without the lock.
  std::vector<Segment*> DetachReleasableSegments(std::size_t bytes_wanted);
  // Private pools that were released: their wholly free ranges are unpinned and join the shared
  // pool (virtual memory; the address space is kept, the pages become free for anyone).
  void ReclaimReleasedPoolSegments();
  // The first rung: growing by `growth` bytes would pass the soft budget, so cached memory goes
  // back first, least recently used first. Virtual memory trims chunks now; segment mode
  // returns the segments detached, for the facade to free.
  absl::StatusOr<std::vector<Segment*>> ReleaseAboveSoftBudget(std::size_t growth);
  // The memory fraction's cap `cap` was set: what is cached above it goes back, as far as live
  // blocks allow (as ReleaseAboveSoftBudget).
  std::vector<Segment*> ReleaseCachedAbove(std::size_t cap);
  // The second rung. Segment mode detaches every wholly free segment; virtual memory says
  // whether a device synchronization would let waiting pages give their chunks (then the
  // facade synchronizes and calls Synchronized).
  CacheRelease ReleaseCached();
  // The device synchronization ReleaseCached asked for completed.
  void Synchronized(std::uint64_t synced_through);
  // Private pool `pool` was just released (its last use dropped). Segment mode detaches every
  // wholly free segment it may (cudaFree waits for all work first). Virtual memory: the graph's
  // replays may still run, on any stream, so the pool's ranges join the shared pool only after
  // a device synchronization that begins after this release; the facade makes it now unless a
  // capture is under way, then calls Synchronized.
  CacheRelease BeginPoolRelease(PoolId pool);
  // EmptyCache: segment mode detaches every wholly free segment (the facade frees them);
  // virtual memory says whether to synchronize first (never while a capture is under way),
  // then FinishEmptyCache gives back every chunk that free pages can give.
  CacheRelease BeginEmptyCache();
  absl::Status FinishEmptyCache(const CacheRelease& release);

  // ---------------------------------------------------------------- report

  // The out-of-memory report's facts that the allocator's state holds, into `facts`.
  void GatherOomFacts(OomFacts* facts) const;
  // What the ladder's last rung leaves to do without the lock: notify `observers` of `report`.
  struct OutOfMemoryOutcome {
    OomReport report;
    std::vector<OomObserverFn> observers;
  };
  // The ladder's last rung under the lock: the report from `facts` (the device's, gathered
  // without the lock) and the state's (GatherOomFacts); counted (num_ooms), entered in the
  // history, kept as the last report.
  OutOfMemoryOutcome OutOfMemory(OomFacts facts);
  // The report of the last request that failed, if any.
  const std::optional<OomReport>& last_oom() const { return last_oom_; }
  // `observer` is called (without the lock) at every failed request from now on.
  void AttachOomObserver(OomObserverFn observer) { oom_observers_.push_back(std::move(observer)); }

 private:
  absl::StatusOr<void*> GrowAddressSpace(const GrowthRequest& request);
  absl::StatusOr<void*> AllocateInOwnRange(const GrowthRequest& request);
  // A new segment joins the heap as one free block: counted adopted, recorded.
  Segment* AdoptSegment(DevicePtr base, std::size_t size, const GrowthRequest& request);
  // Undoes AdoptSegment for a virtual-memory segment nothing used, and gives back its range.
  void DiscardNewSegment(Segment* segment);
  // A wholly free segment leaves the heap: counted released by the backing, recorded, its
  // blocks recycled (the caller frees or deletes it).
  void DetachSegment(Segment* segment);
  // What the backing's page releases need to know of the streams now.
  StreamsNow Streams() const;

  const Parts p_;
  std::optional<OomReport> last_oom_;
  std::vector<OomObserverFn> oom_observers_;
};

}  // namespace vramcache
