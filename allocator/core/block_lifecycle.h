// A block's moves between its states, each with what goes with it: handed out (the statistics,
// the history entry, its pages acquired, the debug modes' bands), freed whole into the reuse
// cache and taken back from it (the fast path), coalesced into the heap's free sets when the
// cache is flushed or a free completes (its pages released, or its single-use range retired),
// and a pending free's completion, which returns it to the cache or the heap. A plain class
// called with the allocator's lock held, as the chunk pool is; the facade keeps the pointer map
// it updates (`allocated_or_cached`) and makes every device call that can block. It is also the
// out-of-memory rungs' host (oom_rungs.h): growth hands its blocks out through it.
//
// The fast path's steps (PopReuseCache, MarkAllocated, PushReuseCache) and the frees' steps are
// defined here, in the header, and inlined into the facade's Allocate and Free, as they were
// before they moved here: a call costs the fast path ~20 instructions. The slow path's search
// is inline too, the compiler left to choose (see ServeFromHeap).
#pragma once

#include <cassert>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "absl/base/attributes.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "allocator/core/allocation_history.h"
#include "allocator/core/allocator_queries.h"
#include "allocator/core/backing.h"
#include "allocator/core/block.h"
#include "allocator/core/block_heap.h"
#include "allocator/core/config.h"
#include "allocator/core/debug_hooks.h"
#include "allocator/core/graph_pools.h"
#include "allocator/core/oom_rungs.h"
#include "allocator/core/placement.h"
#include "allocator/core/reuse_cache.h"
#include "allocator/core/stats.h"
#include "allocator/core/stats_ledger.h"
#include "allocator/core/stream_ordered_frees.h"
#include "allocator/core/stream_uses.h"
#include "allocator/core/thread_fronts.h"

namespace vramcache {

class BlockLifecycle final : public OomRungs::Host {
 public:
  // What the moves work on; all must outlive the lifecycle. `debug` is null unless a debug mode
  // is on; `queries` checks the invariants after each allocation when `check_invariants`.
  struct Parts {
    absl::flat_hash_map<DevicePtr, Block*>* allocated_or_cached = nullptr;  // the pointer map
    BlockHeap* heap = nullptr;
    Placement* placement = nullptr;
    StatsLedger* ledger = nullptr;
    ReuseCache* reuse_cache = nullptr;
    Backing* backing = nullptr;
    GraphPools* graph_pools = nullptr;
    StreamOrderedFrees* frees = nullptr;
    AllocationHistory* history = nullptr;
    const DebugHooks* debug = nullptr;
    const AllocatorQueries* queries = nullptr;
    DeviceStats* stats = nullptr;  // the counters no ledger transition owns (hits, borrowing)
    CrossStreamPolicy cross_stream = CrossStreamPolicy::kWait;  // how a borrower is ordered
    // Virtual-memory mode: a stream does not borrow back the block it borrowed last and gave
    // back; it grows a range of its own instead (BorrowFromOtherStream).
    bool grow_before_reborrowing = false;
    std::size_t front_bytes = 0;  // canaries' front band: user pointer = block + this
    bool check_invariants = false;
  };

  explicit BlockLifecycle(const Parts& parts) : p_(parts) {}
  BlockLifecycle(const BlockLifecycle&) = delete;
  BlockLifecycle& operator=(const BlockLifecycle&) = delete;

  // The rungs retire unmap_on_free's ranges (ReturnToPool); set once, after both are made.
  void AttachRungs(OomRungs* rungs) { rungs_ = rungs; }
  // The per-thread fronts (thread_fronts.h), flushed with the reuse cache; set once.
  void AttachFronts(ThreadFronts* fronts) { fronts_ = fronts; }
  // `stream` was destroyed: what it borrowed last is forgotten, since a new stream given the same
  // handle never traded that block (it would grow a range instead of borrowing it), and the
  // record of every stream a program ever made would otherwise stay.
  void StreamDestroyed(StreamHandle stream) { last_borrow_.erase(stream); }

  // ---------------------------------------------------------------- handing out

  // Hands `block` out for a request of `size` bytes (`rounded` for the block) on `alloc_stream`:
  // out of every free set already, its pages backed (or kept, when it comes from the reuse
  // cache). The user's pointer, or a debug mode's error (the block is then freed again).
  absl::StatusOr<void*> MarkAllocated(Block* block, std::size_t size, std::size_t rounded,
                                      StreamHandle alloc_stream) {
    const bool reused = block->state == BlockState::kCached;  // its pages stayed in use
    block->state = BlockState::kAllocated;
    block->rounded = rounded;
    block->requested = size;
    block->alloc_stream = alloc_stream;
    block->stream_uses.clear();
    block->used_by_destroyed_stream = false;
    // A cached block never left the pointer map (see PushReuseCache): no lookup on the fast path.
    if (!reused) p_.allocated_or_cached->try_emplace(block->addr, block);
    assert(p_.allocated_or_cached->contains(block->addr));
    // While per-thread fronts hold blocks, the peaks these raise are checked first, at once.
    if (p_.ledger->guarding_peaks()) [[unlikely]]
      p_.ledger->GuardAllocation(*block, size);
    p_.ledger->CountUserAllocation</*kCheckPeaks=*/false>(*block, size);
    if (reused) {
      p_.ledger->CountActiveKeepingPages</*kCheckPeaks=*/false>(*block, +1);
    } else {
      p_.ledger->CountActive</*kCheckPeaks=*/false>(*block, +1);
      p_.ledger->SettleVmmSplitStats(block->segment->small);  // only its pool's pages changed
    }
    p_.history->Record(TraceAction::kAlloc, block->addr, block->size, alloc_stream);
    if (p_.check_invariants) p_.queries->CheckInvariantsOrDie();
    if (p_.debug != nullptr) {
      // Bands written and user bytes zeroed on the allocating stream, before its next kernel.
      if (absl::Status s = p_.debug->OnAllocate(block); !s.ok()) {
        // Nothing may be handed out half-prepared: the block is freed again.
        UndoAllocation(block);
        return s;
      }
    }
    return reinterpret_cast<void*>(block->addr + p_.front_bytes);
  }

  // Carves the request out of free block `block` (split when the remainder is worth a block).
  // Virtual memory: ResourceExhausted when its pages cannot be backed now; the block is then
  // free again, as it was.
  absl::StatusOr<void*> FinishAllocation(Block* block, std::size_t size, std::size_t rounded,
                                         StreamHandle alloc_stream);

  // ---------------------------------------------------------------- finding a free block

  // A request the reuse cache did not serve (the allocation's slow path): best fit on its
  // stream after that stream's reuse-cache lists were flushed, then on every stream's, then a
  // block borrowed from another stream's cache; `fresh_addresses` (unmap_on_free,
  // pass-through) goes straight to growth. Its result, or nullopt when growth must serve it:
  // the reuse cache is then flushed and `capturing_known` answered (whether the request's
  // stream captures, asked of the device at most once per allocation).
  // Defined below, inline but not forced: forced into the facade's Allocate (where the slow path
  // was before it moved here) it saves the replays about 1% of their instructions, but the fast
  // path's code around it ran 8-10% slower in time (vramcache-bench fast_path, 62 -> 68 ns a
  // pair); out of line, in the .cc, the replays cost 0.5% more instructions than this.
  std::optional<absl::StatusOr<void*>> ServeFromHeap(const GrowthRequest& request,
                                                     bool fresh_addresses,
                                                     std::optional<bool>& capturing_known);

  // ---------------------------------------------------------------- the reuse cache

  // A block freed whole waits in the reuse cache for the next request of the size it served,
  // which then takes it without any free-set search, split or coalesce. It is coalesced
  // (FlushReuseCache) before anything that needs the true free space: a request nothing else
  // serves, growth, releasing segments, snapshots and invariant checks. The block stays in the
  // pointer map, so a reuse needs no second hash insert.
  ABSL_ATTRIBUTE_ALWAYS_INLINE void PushReuseCache(Block* block) {
    if (p_.debug != nullptr) p_.debug->PoisonIfPending(block);
    // While per-thread fronts hold blocks, the peaks these raise are checked first, at once.
    if (p_.ledger->guarding_peaks()) [[unlikely]]
      p_.ledger->GuardCaching(*block);
    // A cached block keeps its pages.
    p_.ledger->CountActiveKeepingPages</*kCheckPeaks=*/false>(*block, -1);
    p_.history->Record(TraceAction::kFreeCompleted, block->addr, block->size, block->stream);
    block->state = BlockState::kCached;
    p_.ledger->CountSplitBlock</*kCheckPeaks=*/false>(*block, +1);
    p_.reuse_cache->Push(block);
  }

  // The block cached for (`pool`, `stream`, `rounded`), taken out of the cache; null if none.
  Block* PopReuseCache(PoolId pool, StreamHandle stream, std::size_t rounded) {
    Block* block = p_.reuse_cache->Pop(pool, stream, rounded);
    if (block != nullptr) p_.ledger->CountSplitBlock(*block, -1);
    return block;
  }

  // Coalesces every cached block into the heap (in address order), so that placement sees all
  // free space. The per-thread fronts' blocks first join the cache: whatever needs the true free
  // space (growth, the out-of-memory rungs, releases) needs theirs too.
  void FlushReuseCache() override {
    if (fronts_ != nullptr && fronts_->holds_blocks()) fronts_->FlushAll();
    if (p_.reuse_cache->empty()) return;
    FlushCachedBlocks(p_.reuse_cache->TakeAllByAddress());
  }
  // Only the lists of blocks that `stream` allocated last: other streams' cached blocks would
  // go back to their own free lists, which best fit on `stream` does not search, and flushing
  // them would take their fast path from the threads using those streams.
  void FlushReuseCacheOf(StreamHandle stream) {
    if (p_.reuse_cache->empty()) return;
    const std::vector<Block*>& taken = p_.reuse_cache->TakeStreamByAddress(stream);
    if (!taken.empty()) FlushCachedBlocks(taken);
  }

  // ---------------------------------------------------------------- frees completing

  // The user freed `block` and it does not enter the reuse cache (it left the pointer map): it
  // returns to the pool now when no other stream's work may touch it, else waits for the
  // streams that used it (their events; a capture's end first when one of them captures; a
  // device synchronization when one was destroyed).
  absl::Status EndUserFree(Block* block);

  // `block` is free for its own stream again: its poison written, counted inactive, its pages
  // released, coalesced with its free neighbours into the heap (or its single-use range
  // retired).
  void ReturnToPool(Block* block);
  // Returns the pending frees whose events have all completed (stream_ordered_frees.h), after
  // retrying the page releases a capture kept back. `into_reuse_cache` (the allocation path
  // only): a completed free that a plain free would have cached enters the reuse cache.
  absl::Status ReturnCompletedFrees(std::uint64_t synced_through, bool into_reuse_cache);
  // A pending free whose every use has completed (its events were queried done), called back
  // by the stream-ordered frees: into the reuse cache or back to the pool (see the .cc).
  void CompletePendingFree(Block* block);

  // Shutdown: every block is forgotten (live allocations counted freed, their memory goes back
  // with their segments) and every segment detached from the heap; the segments are returned
  // for the backing and the facade to give back.
  std::vector<Segment*> ForgetAll();

  // What the backing's page releases need to know of the streams now.
  StreamsNow Streams() const {
    return StreamsNow{.captures_active = p_.graph_pools->capture_under_way(),
                      .dead_streams = &p_.frees->destroyed_streams()};
  }

  // ---------------------------------------------------------------- OomRungs::Host

  absl::StatusOr<void*> FinishAllocation(Block* block, const GrowthRequest& request) override {
    return FinishAllocation(block, request.size, request.rounded, request.stream);
  }
  absl::StatusOr<void*> MarkAllocated(Block* block, const GrowthRequest& request) override {
    return MarkAllocated(block, request.size, request.rounded, request.stream);
  }
  void Record(TraceAction action, DevicePtr addr, std::size_t size, StreamHandle stream) override {
    p_.history->Record(action, addr, size, stream);
  }

 private:
  // Placement's free block for the request after this stream's reuse-cache lists were flushed:
  // when nothing fits, the other streams' lists are flushed too (a block of this stream that
  // another stream borrowed is cached under the borrower's) and the search is repeated.
  Block* FindCoalescedFreeBlock(bool small, PoolId pool, StreamHandle stream, std::size_t rounded);
  // The best-fitting block cached for another stream, made safe for `stream`: an event recorded
  // now on its owner covers every use the owner made of it before freeing it; the cross-stream
  // policy either checks that event has completed or makes `stream` wait on it. Null when none
  // fits or the policy says it cannot be used yet. With grow_before_reborrowing, also null
  // when the best fit is the block `stream` borrowed last, for the same size, used by nobody
  // since.
  absl::StatusOr<Block*> BorrowFromOtherStream(bool small, PoolId pool, StreamHandle stream,
                                               std::size_t rounded);
  // A block just marked allocated goes back as if freed at once by its own stream.
  void UndoAllocation(Block* block);
  // Cached blocks leave the cache and the pointer map, release their pages and coalesce.
  void FlushCachedBlocks(const std::vector<Block*>& blocks);
  // The block's pages are released (vmm_backing.h); nothing is held in segment mode.
  void ReleaseBacking(Block* block) {
    if (block->holds_pages) p_.backing->ReleasePages(block, Streams());
  }

  const Parts p_;
  OomRungs* rungs_ = nullptr;
  ThreadFronts* fronts_ = nullptr;
  // grow_before_reborrowing: each borrowing stream's last borrow (where, for what size), to
  // tell a block traded back and forth from another block that happens to fit.
  struct LastBorrow {
    DevicePtr addr;
    std::size_t rounded;
    bool operator==(const LastBorrow&) const = default;
  };
  absl::flat_hash_map<StreamHandle, LastBorrow> last_borrow_;
  // Set while the allocation path returns completed frees (ReturnCompletedFrees).
  bool completing_into_reuse_cache_ = false;
};

// ------------------------------------------------------------------ the slow path

inline std::optional<absl::StatusOr<void*>> BlockLifecycle::ServeFromHeap(
    const GrowthRequest& request, bool fresh_addresses, std::optional<bool>& capturing_known) {
  const StreamHandle stream = request.stream;
  // The slow path's calls that a global-mode capture on another thread forbids (event queries)
  // are relaxed where they are made (RelaxedCapture in the chunk pool and the stream-ordered
  // frees), only when they are made: most allocations make none.
  //
  // Best fit sees the heap fully coalesced, as if there were no reuse cache: placing a block
  // among uncoalesced leftovers fragments the heap (measured: 3-8 points of utilization on the
  // shared traces). Each cached block is coalesced once, so this costs O(1) per free, amortized.
  // This stream's lists first (issue #18); everything is flushed before borrowing or growing
  // (FindCoalescedFreeBlock).
  if (fresh_addresses) {
    FlushReuseCache();
  } else {
    FlushReuseCacheOf(stream);
  }
  p_.backing->BeforeHeapSearch(capturing_known, p_.graph_pools->capture_under_way(), stream);
  // In virtual-memory mode a fitting block may still lack physical pages that cannot be found
  // now (ResourceExhausted): the growth ladder frees some and retries.
  if (fresh_addresses) {
    // straight to growth
  } else if (Block* block =
                 FindCoalescedFreeBlock(request.small, request.pool, stream, request.rounded)) {
    absl::StatusOr<void*> result = FinishAllocation(block, request);
    if (result.ok()) ++p_.stats->num_cache_hits;
    if (result.ok() || !absl::IsResourceExhausted(result.status())) return result;
  } else if (p_.cross_stream != CrossStreamPolicy::kNone &&
             !p_.graph_pools->KnowCapturing(capturing_known, stream)) {
    absl::StatusOr<Block*> borrowed =
        BorrowFromOtherStream(request.small, request.pool, stream, request.rounded);
    if (!borrowed.ok()) return borrowed.status();
    if (*borrowed != nullptr) {
      absl::StatusOr<void*> result = FinishAllocation(*borrowed, request);
      if (result.ok() || !absl::IsResourceExhausted(result.status())) return result;
    }
  }
  FlushReuseCache();  // growth sees the true free space, as before
  p_.graph_pools->KnowCapturing(capturing_known, stream);
  return std::nullopt;
}

inline Block* BlockLifecycle::FindCoalescedFreeBlock(bool small, PoolId pool, StreamHandle stream,
                                                     std::size_t rounded) {
  if (Block* block = p_.placement->FindFreeBlock(small, pool, stream, rounded)) return block;
  if (p_.reuse_cache->empty()) return nullptr;
  FlushReuseCache();
  return p_.placement->FindFreeBlock(small, pool, stream, rounded);
}

// ------------------------------------------------------------------ frees, inline

// Inline, as they were in the facade's Free and Allocate: a completed free comes back through
// a std::function (the stream-ordered frees' callback) that inlines CompletePendingFree, and out
// of line these cost cross_stream 1.8% of its instructions (callgrind).
inline void BlockLifecycle::ReturnToPool(Block* block) {
  if (p_.debug != nullptr) p_.debug->PoisonIfPending(block);
  const bool small = block->segment->small;  // `block` may be merged away below
  p_.ledger->CountActive(*block, -1);
  p_.history->Record(TraceAction::kFreeCompleted, block->addr, block->size, block->stream);
  ReleaseBacking(block);
  if (block->segment->single_use) {
    rungs_->RetireRange(block);
  } else {
    p_.heap->CoalesceAndInsert(block);
  }
  p_.ledger->SettleVmmSplitStats(small);  // only its pool's pages changed
}

inline absl::Status BlockLifecycle::EndUserFree(Block* block) {
  StreamUses::AddBorrower(block);
  if (block->used_by_destroyed_stream) {
    p_.frees->AwaitDeviceSynchronization(block);
  } else if (block->stream_uses.empty() && block->foreign_uses.empty()) {
    ReturnToPool(block);
  } else if (p_.graph_pools->AnyCapturing(block->stream_uses)) {
    p_.frees->DeferUntilCaptureEnds(block);
  } else {
    return p_.frees->DeferFree(block);
  }
  return absl::OkStatus();
}

inline absl::Status BlockLifecycle::ReturnCompletedFrees(std::uint64_t synced_through,
                                                         bool into_reuse_cache) {
  p_.backing->FlushDeferredReleases(Streams());
  completing_into_reuse_cache_ = into_reuse_cache;
  absl::Status status = p_.frees->ReturnCompleted(synced_through);
  completing_into_reuse_cache_ = false;
  return status;
}

// Nobody's work touches the block any more. A block of the default pool goes into the reuse
// cache whole, under the stream that allocated it last (its own, or the one that borrowed it),
// with its pages still held: no page release and no free mark is recorded now; the mark is
// recorded on the block's stream if and when the cache is flushed, and the borrowing stream
// takes it back without borrowing again (docs/design.md, "Why reuse is safe": one event per
// cross-stream free). With the debug modes a borrowed block returns to the pool instead: its
// poison fill runs on its own stream, which the borrower is not ordered after.
inline void BlockLifecycle::CompletePendingFree(Block* block) {
  if (completing_into_reuse_cache_ && block->pool_id == kDefaultPool &&
      (block->alloc_stream == block->stream || p_.debug == nullptr) &&
      block->foreign_uses.empty() && !block->segment->single_use &&
      !p_.frees->IsDestroyed(block->stream) && !p_.frees->IsDestroyed(block->alloc_stream) &&
      p_.reuse_cache->HasRoomFor(block->size)) {
    // Cached blocks stay in the pointer map (see PushReuseCache).
    p_.allocated_or_cached->try_emplace(block->addr, block);
    PushReuseCache(block);
    return;
  }
  ReturnToPool(block);
}

}  // namespace vramcache
