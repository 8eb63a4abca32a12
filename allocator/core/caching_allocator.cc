// The caching allocator's policy: find a cached block (best fit on the request's stream), else
// grow by a segment; split on allocation, coalesce on free; statistics updated at the one place
// each transition happens. One lock per device; it is never held across a device call that can
// block (Malloc, Free, synchronize); non-blocking calls (event record/query) run under it.
#include "allocator/core/caching_allocator.h"

#include <algorithm>
#include <atomic>
#include <cassert>
#include <utility>
#include <vector>

#include "absl/container/btree_map.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "allocator/base/mutex.h"
#include "allocator/core/allocation_history.h"
#include "allocator/core/block_heap.h"
#include "allocator/core/debug_guard.h"
#include "allocator/core/graph_pools.h"
#include "allocator/core/growth_limits.h"
#include "allocator/core/invariant_check.h"
#include "allocator/core/oom_ladder.h"
#include "allocator/core/oom_rungs.h"
#include "allocator/core/placement.h"
#include "allocator/core/relaxed_capture.h"
#include "allocator/core/reuse_cache.h"
#include "allocator/core/runtime_settings.h"
#include "allocator/core/segment_backing.h"
#include "allocator/core/size_classes.h"
#include "allocator/core/stats_ledger.h"
#include "allocator/core/stream_ordered_frees.h"
#include "allocator/core/vmm_arena.h"
#include "allocator/core/vmm_backing.h"

namespace vramcache {

namespace {

bool UsesVirtualMemory(const AllocatorConfig& config, const DeviceCapabilities& caps) {
  if (!caps.vmm_supported || !config.caching) return false;
  return config.vmm != VmmMode::kOff;
}

}  // namespace

class CachingAllocatorImpl {
 public:
  CachingAllocatorImpl(Device* device, const AllocatorConfig& config, Clock* clock)
      : device_(device),
        config_(config),
        clock_(clock),
        guard_(device, config),
        debug_(guard_.active()),
        front_bytes_(guard_.front_bytes()),
        reuse_cache_(
            EffectiveReuseCacheBytes(config, UsesVirtualMemory(config, device->Capabilities()))),
        history_(config, clock),
        limits_(config, device->Capabilities().total_bytes) {
    if (UsesVirtualMemory(config, device->Capabilities())) {
      auto vmm = std::make_unique<VmmBacking>(device, config, &ledger_, limits_.budget());
      vmm_ = vmm.get();
      backing_ = std::move(vmm);
      single_use_ranges_ = config.unmap_on_free;
    } else {
      auto segments = std::make_unique<SegmentBacking>(&stats_, &ledger_, &limits_,
                                                       &heap_.small_free(), &heap_.large_free());
      segment_backing_ = segments.get();
      backing_ = std::move(segments);
    }
    rungs_.emplace(OomRungs::Parts{
        .host = &rungs_host_,
        .heap = &heap_,
        .placement = &placement_,
        .ledger = &ledger_,
        .stats = &stats_,
        .limits = &limits_,
        .backing = backing_.get(),
        .vmm = vmm_,
        .segments = segment_backing_,
        .graph_pools = &graph_pools_,
        .frees = &frees_,
        .settings = &settings_,
        .caching = config.caching,
        .single_use_ranges = single_use_ranges_,
    });
    MutexLock lock(&mu_);  // (nothing else can see the allocator yet; the analysis wants it)
    settings_ = RuntimeSettings::Of(config);
    rounders_.push_back(std::make_unique<const SizeRounder>(config.roundup_power2_divisions));
    rounder_.store(rounders_.back().get(), std::memory_order_release);
  }

  ~CachingAllocatorImpl() {
    // Process-wide allocators are never destroyed (PyTorch frees tensors during static
    // destruction); owned ones give everything back.
    Shutdown().IgnoreError();
  }

  // Always inline: CachingAllocator::Allocate and Free are one call each (the pass-through
  // mode's copies are the only others), as before the facade became a pimpl (18 instructions a
  // fast-path pair out of line).
  ABSL_ATTRIBUTE_ALWAYS_INLINE absl::StatusOr<void*> Allocate(std::size_t size,
                                                              StreamHandle stream) {
    if (size == 0) return nullptr;
    // With canaries the block also holds the guard bands (debug_guard.h); else padded == size.
    const std::size_t padded = guard_.PaddedSize(size);
    if (padded > kMaxRequestSize) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "vramcache: cannot allocate %d bytes: larger than any device (limit %d bytes); "
          "the size is probably corrupted or negative",
          size, kMaxRequestSize));
    }
    // Read without the lock: a rounder is never changed or freed while the allocator lives
    // (ApplyRuntimeSettings installs a new one), and any rounder's answer is a valid size.
    const std::size_t rounded = rounder_.load(std::memory_order_acquire)->RoundRequest(padded);
    const bool small = SizeRounder::IsSmall(padded);

    PoolId pool = kDefaultPool;
    bool capturing = false;
    {
      MutexLock lock(&mu_);
      if (shut_down_) return ShutDownError();
      frees_.StreamUsed(stream);  // the handle names a new stream
      pool = graph_pools_.PoolFor(stream);
      // unmap_on_free: every allocation gets fresh addresses (TryGrow); pass-through:
      // every allocation is a device allocation (TryGrow).
      const bool fresh_addresses = (single_use_ranges_ || !config_.caching) && pool == kDefaultPool;
      // Pending frees first (they may make a block free again); nothing recorded inside a
      // capture may be queried.
      // Whether the stream captures is asked of the device only when an answer is needed.
      std::optional<bool> capturing_known;
      if (frees_.has_pending()) {
        capturing_known = graph_pools_.Capturing(stream);
        if (!*capturing_known) {
          if (absl::Status s = ProcessPendingFrees(/*synced_through=*/0, /*into_reuse_cache=*/true);
              !s.ok()) {
            return s;
          }
        }
      }
      // The fast path: a block this stream freed whole.
      if (Block* block = fresh_addresses ? nullptr : PopReuseCache(pool, stream, rounded)) {
        ++stats_.num_cache_hits;
        return MarkAllocated(block, size, rounded, stream);
      }
      // The slow path's calls that a global-mode capture on another thread forbids (event
      // queries) are relaxed where they are made (RelaxedCapture in the chunk pool and the
      // stream-ordered frees), only when they are made: most allocations make none.
      //
      // Best fit sees the heap fully coalesced, as if there were no reuse cache: placing a
      // block among uncoalesced leftovers fragments the heap (measured: 3-8 points of
      // utilization on the shared traces). Each cached block is coalesced once, so this costs
      // O(1) per free, amortized. This stream's lists first: other streams' cached blocks go
      // back to their own free lists, which best fit on this stream does not search, and
      // flushing them would take their fast path from the threads using those streams (issue
      // #18); everything is flushed before borrowing or growing (FindCoalescedFreeBlock).
      if (fresh_addresses) {
        FlushReuseCache();
      } else {
        FlushReuseCacheOf(stream);
      }
      if (vmm_ != nullptr) {
        if (capturing_known.has_value() || !captures_.empty()) {
          vmm_->chunks().SetEventQueriesAllowed(!captures_.empty() ? false : !*capturing_known);
        } else {
          vmm_->chunks().SetEventQueriesAllowedUnlessCapturing(stream);  // asked at the first query
        }
      }
      // In virtual-memory mode a fitting block may still lack physical pages that cannot be
      // found now (ResourceExhausted): the growth ladder frees some and retries.
      if (fresh_addresses) {
        // straight to growth
      } else if (Block* block = FindCoalescedFreeBlock(small, pool, stream, rounded)) {
        absl::StatusOr<void*> result = FinishAllocation(block, size, rounded, stream);
        if (result.ok()) ++stats_.num_cache_hits;
        if (result.ok() || !absl::IsResourceExhausted(result.status())) return result;
      } else if (config_.cross_stream != CrossStreamPolicy::kNone &&
                 !graph_pools_.KnowCapturing(capturing_known, stream)) {
        absl::StatusOr<Block*> borrowed = TakeFromOtherStream(small, pool, stream, rounded);
        if (!borrowed.ok()) return borrowed.status();
        if (*borrowed != nullptr) {
          absl::StatusOr<void*> result = FinishAllocation(*borrowed, size, rounded, stream);
          if (result.ok() || !absl::IsResourceExhausted(result.status())) return result;
        }
      }
      FlushReuseCache();  // growth sees the true free space, as before
      capturing = graph_pools_.KnowCapturing(capturing_known, stream);
    }
    return AllocateWithGrowth(size, rounded, small, stream, pool, capturing);
  }

  ABSL_ATTRIBUTE_ALWAYS_INLINE absl::Status Free(void* ptr) {
    const auto addr = reinterpret_cast<DevicePtr>(ptr);
    if (ptr == nullptr) return absl::OkStatus();  // as cudaFree(nullptr) and PyTorch
    // Canaries: the bands are checked first, on the allocating stream, with the lock dropped
    // (the check synchronizes that stream and may allocate on the device); the block is marked
    // as being freed meanwhile, so a second free or a record_stream of it is refused. The free
    // always completes, and a damaged band is reported afterwards.
    absl::Status band_status = absl::OkStatus();
    if (guard_.canaries()) {
      absl::StatusOr<GuardedBlock> guarded = BeginCheckedFree(addr);
      if (!guarded.ok()) return guarded.status();
      RelaxedCapture relaxed(device_);
      band_status = guard_.VerifyBands(*guarded);
    }
    MutexLock lock(&mu_);
    auto it = allocated_or_cached_.find(addr - front_bytes_);
    if (guard_.canaries()) {
      if (shut_down_) return ShutDownError();
      // Marked freeing, nobody else could free or reuse it meanwhile.
      it->second->freeing = false;
    } else if (it == allocated_or_cached_.end() || it->second->state != BlockState::kAllocated ||
               it->second->freeing) {
      return UnknownPointerError("free", addr);
    }
    Block* block = it->second;
    absl::Status guard_status = absl::OkStatus();
    if (debug_) guard_status = CheckOnFree(block, band_status);
    ledger_.CountUserFree(*block);
    Record(TraceAction::kFreeRequested, block->addr, block->size, block->alloc_stream);
    if (block->stream_uses.empty() && block->foreign_uses.empty() &&
        block->alloc_stream == block->stream && !block->used_by_destroyed_stream &&
        !block->segment->single_use && reuse_cache_.HasRoomFor(block->size)) {
      PushReuseCache(block);  // stays in allocated_or_cached_: a reuse needs no second hash insert
      if (!guard_status.ok()) return guard_status;
      return MaybeCheckInvariants();
    }
    allocated_or_cached_.erase(it);
    // A plain free's only call that a global-mode capture on another thread forbids is made
    // (relaxed) by ReleaseBacking; the debug modes and single-use ranges may make more.
    std::optional<RelaxedCapture> relaxed;
    if (debug_ || block->segment->single_use) relaxed.emplace(device_);

    // Streams whose work may still touch the block: record_stream's, and the allocating stream
    // when it borrowed the block from another stream's cache.
    if (block->alloc_stream != block->stream &&
        !Contains(block->stream_uses, block->alloc_stream)) {
      block->stream_uses.push_back(block->alloc_stream);
    }
    if (block->used_by_destroyed_stream) {
      frees_.AwaitDeviceSynchronization(block);
    } else if (block->stream_uses.empty() && block->foreign_uses.empty()) {
      ReturnToPool(block);
    } else if (graph_pools_.AnyCapturing(block->stream_uses)) {
      frees_.DeferUntilCaptureEnds(block);
    } else {
      absl::Status s = frees_.DeferFree(block);
      if (!s.ok()) return s;
    }
    if (!guard_status.ok()) return guard_status;
    return MaybeCheckInvariants();
  }

  absl::Status EnablePeerAccess(int peer_ordinal) {
    MutexLock lock(&mu_);
    if (peer_ordinal < 0 || peer_ordinal == device_->Capabilities().ordinal) {
      return absl::InvalidArgumentError(
          absl::StrFormat("vramcache: enable_peer_access(%d) on device %d: not a peer",
                          peer_ordinal, device_->Capabilities().ordinal));
    }
    return backing_->EnablePeerAccess(peer_ordinal);
  }

  absl::Status CheckCanaries() {
    MutexLock lock(&mu_);
    if (!guard_.canaries()) return absl::OkStatus();
    if (graph_pools_.capture_under_way()) {
      return absl::FailedPreconditionError(
          "vramcache: check_canaries during a CUDA graph capture: it must synchronize the "
          "device, which would invalidate the capture; call it after the capture ends");
    }
    std::vector<GuardedBlock> live;
    for (const auto& [addr, block] : allocated_or_cached_) {
      if (block->state == BlockState::kAllocated) live.push_back(Guarded(block));
    }
    std::sort(live.begin(), live.end(), [](const GuardedBlock& a, const GuardedBlock& b) {
      return a.block_addr < b.block_addr;
    });
    return guard_.CheckAll(live);
  }

  absl::Status RecordStream(void* ptr, StreamHandle stream) {
    MutexLock lock(&mu_);
    auto it = allocated_or_cached_.find(reinterpret_cast<DevicePtr>(ptr) - front_bytes_);
    if (it == allocated_or_cached_.end() || it->second->state != BlockState::kAllocated) {
      return UnknownPointerError("record_stream", reinterpret_cast<DevicePtr>(ptr));
    }
    Block* block = it->second;
    if (block->freeing) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "vramcache: record_stream of %#x: the allocation is being freed by another thread",
          reinterpret_cast<DevicePtr>(ptr)));
    }
    if (stream == block->alloc_stream) return absl::OkStatus();  // PyTorch: a no-op
    // A stream of another device gets that device's event at the free (as PyTorch records it
    // on the stream's device): this device's events may not be recorded on it.
    absl::StatusOr<int> ordinal = frees_.StreamOrdinal(stream);
    if (!ordinal.ok()) return ordinal.status();
    if (*ordinal != device_->Capabilities().ordinal) {
      Device* peer = peer_devices_ ? peer_devices_(*ordinal) : nullptr;
      if (peer == nullptr) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "vramcache: record_stream of %#x on device %d with stream %#x of device %d: that "
            "device is not known to this allocator (give it one with "
            "CachingAllocator::SetPeerDevices, as the registry does for every device it opens)",
            reinterpret_cast<DevicePtr>(ptr), device_->Capabilities().ordinal, stream, *ordinal));
      }
      const std::pair<Device*, StreamHandle> use{peer, stream};
      if (std::find(block->foreign_uses.begin(), block->foreign_uses.end(), use) ==
          block->foreign_uses.end()) {
        block->foreign_uses.push_back(use);
      }
      return absl::OkStatus();
    }
    frees_.StreamUsed(stream);  // the handle names a new stream
    if (!Contains(block->stream_uses, stream)) block->stream_uses.push_back(stream);
    return absl::OkStatus();
  }

  absl::Status StreamDestroyed(StreamHandle stream) {
    // 0 (the default stream), cudaStreamLegacy (1) and cudaStreamPerThread (2) are never
    // destroyed: taking them for dead would park every block cached for them.
    if (stream <= 2) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "vramcache: stream_destroyed(%#x): a default stream is never destroyed", stream));
    }
    MutexLock lock(&mu_);
    if (shut_down_) return absl::OkStatus();
    FlushReuseCache();
    // From now on no event may be recorded on the handle (until a new stream gets it): what is
    // cached for it is parked below behind an event recorded now, and afterwards needs none.
    frees_.MarkDestroyed(stream);
    backing_->StreamDestroyed(stream);
    for (auto& [addr, block] : allocated_or_cached_) {
      if (block->state != BlockState::kAllocated) continue;
      if (block->stream == stream || block->alloc_stream == stream ||
          Contains(block->stream_uses, stream)) {
        block->used_by_destroyed_stream = true;
      }
    }
    // Pending frees returning to this stream's list, frees waiting for a capture to end, and the
    // free blocks cached for it wait for its last work (or a synchronization) from now on.
    if (absl::Status s = frees_.ParkFor(stream); !s.ok()) return s;
    return MaybeCheckInvariants();
  }

  void BeginAllocateToPool(PoolId pool, std::function<bool(StreamHandle)> filter) {
    MutexLock lock(&mu_);
    graph_pools_.BeginCapture(pool, std::move(filter));
  }

  absl::Status EndAllocateToPool(PoolId pool) {
    MutexLock lock(&mu_);
    if (absl::Status s = graph_pools_.EndCapture(pool); !s.ok()) return s;
    if (graph_pools_.capture_under_way()) return absl::OkStatus();
    // The capture is over: frees that needed events can record them now.
    backing_->CaptureEnded(StreamsNowLocked());
    return frees_.CaptureEnded();
  }

  absl::Status ReleasePool(PoolId pool) {
    RelaxedCapture relaxed(device_);
    CacheRelease release;
    {
      MutexLock lock(&mu_);
      absl::StatusOr<bool> released_now = graph_pools_.DropUse(pool);
      if (!released_now.ok()) return released_now.status();
      if (!*released_now) return absl::OkStatus();
      release = rungs_->BeginPoolRelease(pool);
    }
    // Segment mode frees the detached segments. Virtual memory: during a capture no
    // synchronization is allowed, and the next one (EmptyCache, the ladder) reclaims the ranges.
    if (!release.synchronize) return FreeSegmentMemory(release.detached);
    if (!device_->SynchronizeDevice().ok()) return absl::OkStatus();
    MutexLock lock(&mu_);
    rungs_->Synchronized(release.synced_through);
    return MaybeCheckInvariants();
  }

  bool caching() const { return config_.caching; }

  // Pass-through: every segment whose free has completed goes back to the device now, as
  // cudaFree would (segments of live private pools stay, as they do when caching). Nothing
  // during a capture the allocator knows of (a device free is illegal then): those go back at
  // the first free after it.
  absl::Status ReleaseCompletedFrees() {
    std::vector<Segment*> released;
    {
      MutexLock lock(&mu_);
      if (shut_down_ || graph_pools_.capture_under_way()) return absl::OkStatus();
      released = rungs_->DetachReleasableSegments(/*bytes_wanted=*/SIZE_MAX);
    }
    if (released.empty()) return absl::OkStatus();
    RelaxedCapture relaxed(device_);
    return FreeSegmentMemory(released);
  }

  absl::Status EmptyCache() {
    RelaxedCapture relaxed(device_);
    if (absl::Status s = SynchronizePendingFrees(); !s.ok()) return s;
    CacheRelease release;
    {
      MutexLock lock(&mu_);
      if (shut_down_) return absl::OkStatus();
      release = rungs_->BeginEmptyCache();
    }
    // Segment mode frees the wholly free segments; virtual memory gives back every chunk that
    // free pages can give (after a device synchronization when pages wait for their last use).
    if (vmm_ == nullptr) return FreeSegmentMemory(release.detached);
    if (release.synchronize) {
      if (absl::Status s = device_->SynchronizeDevice(); !s.ok()) return s;
    }
    MutexLock lock(&mu_);
    if (absl::Status s = rungs_->FinishEmptyCache(release); !s.ok()) return s;
    return MaybeCheckInvariants();
  }

  absl::Status Shutdown() {
    std::vector<Segment*> released;
    std::vector<EventHandle> events;
    {
      MutexLock lock(&mu_);
      if (shut_down_) return absl::OkStatus();
      shut_down_ = true;
      events = frees_.ForgetAll();
      graph_pools_.EndAllCaptures();
      FlushReuseCache();
      // Live allocations are forgotten: their memory goes back with the segments.
      for (auto& [addr, block] : allocated_or_cached_) {
        ledger_.CountUserFree(*block);
        ledger_.CountActive(*block, -1);
      }
      allocated_or_cached_.clear();
      for (auto& [base, segment] : heap_.segments()) released.push_back(segment);
      heap_.segments().clear();
      backing_->DropDeferredReleases();
      for (Segment* segment : released) {
        backing_->Detached(*segment);
        for (Block* b = segment->head; b != nullptr; b = b->next) {
          if (b->state == BlockState::kPendingFree) ledger_.CountActive(*b, -1);
          if (b->state == BlockState::kParked) ledger_.CountSplitBlock(*b, -1);
        }
        heap_.ForgetSegmentBlocks(segment);
      }
      heap_.Clear();
    }
    absl::Status status = absl::OkStatus();
    for (EventHandle event : events) status.Update(device_->DestroyEvent(event));
    // Only when something goes back: an allocator owning nothing may outlive its device.
    std::optional<RelaxedCapture> relaxed;
    if (!released.empty()) relaxed.emplace(device_);
    if (vmm_ != nullptr) {
      // Every page, live ones included, is unmapped and every chunk and range released.
      MutexLock lock(&mu_);
      status.Update(vmm_->chunks().ReleaseAll());
      vmm_->SettleStats();
      ledger_.SettleVmmSplitStats();
      for (Segment* segment : released) delete segment;
      return status;
    }
    status.Update(FreeSegmentMemory(released));
    return status;
  }

  DeviceStats GetStats() const {
    MutexLock lock(&mu_);
    DeviceStats copy = stats_;
    copy.max_split_size = settings_.max_split_size == SIZE_MAX
                              ? -1
                              : static_cast<std::int64_t>(settings_.max_split_size);
    copy.budget_bytes = static_cast<std::int64_t>(limits_.budget());
    copy.address_space_reserved_bytes = static_cast<std::int64_t>(backing_->AddressSpaceBytes());
    return copy;
  }

  void ResetPeakStats() {
    MutexLock lock(&mu_);
    stats_.ResetPeak();
  }

  void ResetAccumulatedStats() {
    MutexLock lock(&mu_);
    stats_.ResetAccumulated();
  }

  absl::StatusOr<std::size_t> AllocationSize(const void* ptr) const {
    MutexLock lock(&mu_);
    auto it = allocated_or_cached_.find(reinterpret_cast<DevicePtr>(ptr) - front_bytes_);
    if (it == allocated_or_cached_.end() || it->second->state != BlockState::kAllocated) {
      return absl::NotFoundError(absl::StrFormat("vramcache: %#x is not a live allocation",
                                                 reinterpret_cast<DevicePtr>(ptr)));
    }
    return it->second->size;
  }

  absl::StatusOr<std::pair<DevicePtr, std::size_t>> BaseAllocation(const void* ptr) const {
    const auto addr = reinterpret_cast<DevicePtr>(ptr);
    MutexLock lock(&mu_);
    auto it = heap_.segments().upper_bound(addr);
    if (it != heap_.segments().begin()) {
      const Segment* segment = std::prev(it)->second;
      if (addr < segment->base + segment->size) {
        return std::make_pair(segment->base, segment->size);
      }
    }
    return absl::NotFoundError(
        absl::StrFormat("vramcache: %#x is not inside any segment of this allocator", addr));
  }

  std::size_t LargestFreeBlock() const {
    MutexLock lock(&mu_);
    std::size_t largest =
        std::max(backing_->FreeMemory().largest_block, reuse_cache_.LargestBlock());
    // Virtual-memory mode: free address space is plentiful, and any request is stitched from
    // free pages, cached chunks and new chunks alike: the largest allocation that can succeed
    // is all of those (what PyTorch's cacheInfo means: device free memory or the largest
    // cached block, whichever is larger).
    if (vmm_ != nullptr) {
      // New chunks: what the device has free, and no more than the budget leaves.
      std::size_t headroom = 0;
      if (absl::StatusOr<DeviceMemInfo> info = device_->MemInfo(); info.ok()) {
        headroom = info->free_bytes;
      }
      headroom = std::min(headroom, limits_.Headroom(backing_->HeldBytes()));
      largest = backing_->FreeMemory().bytes + headroom;
    }
    return largest;
  }

  std::vector<SegmentInfo> Snapshot() const {
    MutexLock lock(&mu_);
    std::vector<SegmentInfo> out;
    out.reserve(heap_.segments().size());
    for (const auto& [base, segment] : heap_.segments()) backing_->AppendSnapshot(*segment, &out);
    return out;
  }

  std::vector<TraceEntry> History() const {
    MutexLock lock(&mu_);
    return history_.OldestFirst();
  }

  std::optional<OomReport> LastOom() const {
    MutexLock lock(&mu_);
    return last_oom_;
  }

  void SetBudget(std::size_t bytes) {
    MutexLock lock(&mu_);
    limits_.SetBudget(bytes);
    backing_->SetBudget(bytes);
  }

  absl::StatusOr<std::size_t> SetMemoryFraction(double fraction) {
    RelaxedCapture relaxed(device_);
    if (!(fraction >= 0.0 && fraction <= 1.0)) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "vramcache: memory fraction %g is outside [0, 1] (0 means nothing may be reserved)",
          fraction));
    }
    std::size_t cap = 0;
    {
      MutexLock lock(&mu_);
      if (shut_down_) return ShutDownError();
      cap = limits_.CapForFraction(fraction);
      // garbage_collection_threshold is a fraction of what may be reserved, as in PyTorch: the
      // soft budget follows the cap.
      limits_.SetFractionCap(cap);
      backing_->SetBudget(cap);
    }
    // What is cached above the new cap goes back now, as far as live blocks allow.
    std::vector<Segment*> released;
    std::size_t held = 0;
    {
      MutexLock lock(&mu_);
      released = rungs_->ReleaseCachedAbove(cap);  // freed below, without the lock
      held = backing_->HeldBytes();
    }
    if (absl::Status s = FreeSegmentMemory(released); !s.ok()) return s;
    return held > cap ? held - cap : 0;
  }

  void SetPeerDevices(std::function<Device*(int)> resolver) {
    MutexLock lock(&mu_);
    peer_devices_ = std::move(resolver);
  }

  std::size_t Budget() const {
    MutexLock lock(&mu_);
    return limits_.budget();
  }

  // An atomic in the limits: read without the lock (the growth path asks before taking it).
  std::size_t SoftBudget() const { return ABSL_TS_UNCHECKED_READ(limits_).soft_budget(); }

  void AttachOomObserver(CachingAllocator::OomObserver observer) {
    MutexLock lock(&mu_);
    oom_observers_.push_back(std::move(observer));
  }

  absl::Status CheckInvariants() const {
    MutexLock lock(&mu_);
    return CheckInvariantsLocked();
  }

  AllocatorConfig config() const {
    AllocatorConfig config = config_;
    MutexLock lock(&mu_);
    settings_.ApplyTo(config);
    return config;
  }

  absl::Status ApplyRuntimeSettings(const RuntimeSettings& settings) {
    MutexLock lock(&mu_);
    if (shut_down_) return ShutDownError();
    if (settings.roundup_power2_divisions != settings_.roundup_power2_divisions) {
      rounders_.push_back(std::make_unique<const SizeRounder>(settings.roundup_power2_divisions));
      rounder_.store(rounders_.back().get(), std::memory_order_release);
    }
    // Blocks and segments already counted oversize stay counted until they go (their flags).
    ledger_.SetMaxSplitSize(settings.max_split_size);
    settings_ = settings;
    limits_.SetGarbageCollectionThreshold(settings_.garbage_collection_threshold);
    return absl::OkStatus();
  }
  Device* device() const { return device_; }

 private:
  // ---------------------------------------------------------------- allocation

  // One request's rungs of the out-of-memory ladder (oom_ladder.h orders them; oom_rungs.h takes
  // their steps under the lock): each takes the lock around those steps and makes the device
  // calls that can block without it.
  class GrowthRungs final : public OomLadderRungs {
   public:
    GrowthRungs(CachingAllocatorImpl* impl, const GrowthRequest& request)
        : impl_(impl),
          request_(request),
          // Pass-through: a device allocation of the rounded size, nothing beside it.
          preferred_(impl->config_.caching ? SizeRounder::SegmentSizeFor(request.rounded)
                                           : request.rounded),
          // When the preferred segment does not fit, a segment of exactly the rounded size
          // might.
          tight_((request.rounded + kLargeSegmentRounding - 1) / kLargeSegmentRounding *
                 kLargeSegmentRounding) {}

    std::size_t preferred() const { return preferred_; }

    absl::Status ReleaseAboveSoftBudget(std::size_t growth) override {
      return impl_->ReleaseForSoftBudget(growth);
    }
    std::optional<absl::StatusOr<void*>> TryGrow() override {
      // Virtual memory: address space is not what runs out, so one size is enough.
      const int candidates = tight_ < preferred_ && impl_->vmm_ == nullptr ? 2 : 1;
      for (int i = 0; i < candidates; ++i) {
        absl::StatusOr<void*> result = impl_->TryGrow(request_, i == 0 ? preferred_ : tight_);
        if (result.ok() || !absl::IsResourceExhausted(result.status())) return result;
        last_error_ = result.status();
      }
      return std::nullopt;
    }
    absl::Status ReleaseCachedMemory(bool* released_any) override {
      return impl_->ReleaseCachedOrSynchronize(released_any);
    }
    bool HasPendingFrees() override {
      MutexLock lock(&impl_->mu_);
      return impl_->frees_.has_pending();
    }
    absl::Status SynchronizePendingFrees() override { return impl_->SynchronizePendingFrees(); }
    void CountRetry() override {
      MutexLock lock(&impl_->mu_);
      ++impl_->stats_.num_alloc_retries;
    }
    absl::Status OutOfMemory() override {
      return impl_->OutOfMemory(request_, preferred_, last_error_);
    }

   private:
    CachingAllocatorImpl* const impl_;
    const GrowthRequest request_;
    const std::size_t preferred_;
    const std::size_t tight_;
    absl::Status last_error_;  // the last growth's, for the report
  };

  // The facade's steps the rungs take under the lock (OomRungs::Host).
  class RungsHost final : public OomRungs::Host {
   public:
    explicit RungsHost(CachingAllocatorImpl* impl) : impl_(impl) {}
    void FlushReuseCache() ABSL_NO_THREAD_SAFETY_ANALYSIS override { impl_->FlushReuseCache(); }
    absl::StatusOr<void*> FinishAllocation(Block* block, const GrowthRequest& request)
        ABSL_NO_THREAD_SAFETY_ANALYSIS override {
      return impl_->FinishAllocation(block, request.size, request.rounded, request.stream);
    }
    absl::StatusOr<void*> MarkAllocated(Block* block, const GrowthRequest& request)
        ABSL_NO_THREAD_SAFETY_ANALYSIS override {
      return impl_->MarkAllocated(block, request.size, request.rounded, request.stream);
    }
    void Record(TraceAction action, DevicePtr addr, std::size_t size,
                StreamHandle stream) ABSL_NO_THREAD_SAFETY_ANALYSIS override {
      impl_->Record(action, addr, size, stream);
    }

   private:
    CachingAllocatorImpl* const impl_;
  };

  absl::StatusOr<void*> AllocateWithGrowth(std::size_t size, std::size_t rounded, bool small,
                                           StreamHandle stream, PoolId pool, bool capturing) {
    // Growth and the out-of-memory ladder allocate, free and synchronize on the device.
    RelaxedCapture relaxed(device_);
    GrowthRungs rungs(this, GrowthRequest{size, rounded, small, stream, pool, capturing});
    return ClimbOomLadder(rungs, capturing, SoftBudget() > 0, rungs.preferred());
  }

  // One attempt to grow by `segment_size` bytes and serve the request from the new segment
  // (virtual memory: from address space, all under the lock).
  absl::StatusOr<void*> TryGrow(const GrowthRequest& request, std::size_t segment_size) {
    {
      MutexLock lock(&mu_);
      if (shut_down_) return ShutDownError();
      if (auto served = rungs_->BeginGrowth(request, segment_size)) return *std::move(served);
    }
    absl::StatusOr<DevicePtr> memory = device_->Malloc(segment_size);
    MutexLock lock(&mu_);
    rungs_->GrowthReturned(segment_size);
    if (!memory.ok()) return memory.status();
    if (shut_down_) {
      mu_.Unlock();
      device_->Free(*memory).IgnoreError();
      mu_.Lock();
      return ShutDownError();
    }
    return rungs_->ServeFromNewSegment(*memory, segment_size, request);
  }

  // FindFreeBlock after this stream's reuse-cache lists were flushed: when nothing fits, the
  // other streams' lists are flushed too (a block of this stream that another stream borrowed
  // is cached under the borrower's) and the search is repeated.
  Block* FindCoalescedFreeBlock(bool small, PoolId pool, StreamHandle stream, std::size_t rounded)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (Block* block = placement_.FindFreeBlock(small, pool, stream, rounded)) return block;
    if (reuse_cache_.empty()) return nullptr;
    FlushReuseCache();
    return placement_.FindFreeBlock(small, pool, stream, rounded);
  }

  // The best-fitting block cached for another stream, made safe for `stream`: an event
  // recorded now on its owner covers every use the owner made of it before freeing it; the
  // policy either checks that event has completed or makes `stream` wait on it.
  absl::StatusOr<Block*> TakeFromOtherStream(bool small, PoolId pool, StreamHandle stream,
                                             std::size_t rounded)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Block* best = placement_.BestFitOnOtherStream(small, pool, stream, rounded);
    if (best == nullptr) return nullptr;
    absl::StatusOr<bool> usable = frees_.OrderAfterOwner(best, stream, config_.cross_stream);
    if (!usable.ok()) return usable.status();
    if (!*usable) return nullptr;
    ++stats_.num_cross_stream_reuse;
    return best;
  }

  static bool Contains(const absl::InlinedVector<StreamHandle, 2>& streams, StreamHandle s) {
    return std::find(streams.begin(), streams.end(), s) != streams.end();
  }

  // Carves the request out of free block `block`. Virtual memory: ResourceExhausted when its
  // pages cannot be backed now; the block is then free again, as it was.
  absl::StatusOr<void*> FinishAllocation(Block* block, std::size_t size, std::size_t rounded,
                                         StreamHandle alloc_stream)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    heap_.RemoveFreeBlock(block);
    if (placement_.ShouldSplit(block, rounded)) heap_.Split(block, rounded);
    if (absl::Status s = backing_->AcquirePages(block); !s.ok()) {
      heap_.CoalesceAndInsert(block);
      return s;
    }
    return MarkAllocated(block, size, rounded, alloc_stream);
  }

  // ---------------------------------------------------------------- virtual memory

  // The block's pages are released (vmm_backing.h); nothing held in segment mode.
  void ReleaseBacking(Block* block) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (block->holds_pages) backing_->ReleasePages(block, StreamsNowLocked());
  }

  // What the backing's page releases need to know of the streams.
  StreamsNow StreamsNowLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return StreamsNow{.captures_active = graph_pools_.capture_under_way(),
                      .dead_streams = &frees_.destroyed_streams()};
  }

  absl::StatusOr<void*> MarkAllocated(Block* block, std::size_t size, std::size_t rounded,
                                      StreamHandle alloc_stream)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const bool reused = block->state == BlockState::kCached;  // its pages stayed in use
    block->state = BlockState::kAllocated;
    block->rounded = rounded;
    block->requested = size;
    block->alloc_stream = alloc_stream;
    block->stream_uses.clear();
    block->used_by_destroyed_stream = false;
    // A cached block never left allocated_or_cached_ (see Free): no lookup on the fast path.
    if (!reused) allocated_or_cached_.try_emplace(block->addr, block);
    assert(allocated_or_cached_.contains(block->addr));
    ledger_.CountUserAllocation(*block, size);
    if (reused) {
      ledger_.CountActiveKeepingPages(*block, +1);
    } else {
      CountActive(block, +1);
      ledger_.SettleVmmSplitStats(block->segment->small);  // only its pool's pages changed
    }
    Record(TraceAction::kAlloc, block->addr, block->size, alloc_stream);
    if (config_.check_invariants) CheckInvariantsOrDie();
    if (debug_) {
      // Bands written and user bytes zeroed on the allocating stream, before its next kernel.
      if (absl::Status s = guard_.OnAllocate(Guarded(block)); !s.ok()) {
        // Nothing may be handed out half-prepared: the block is freed again.
        UndoAllocation(block);
        return s;
      }
    }
    return reinterpret_cast<void*>(block->addr + front_bytes_);
  }

  // ---------------------------------------------------------------- statistics transitions

  // Forwarders to the ledger (stats_ledger.h) for the fast path only (MarkAllocated,
  // PushReuseCache, PopReuseCache), whose code stays as it is while it is tuned; inline.
  void CountActive(const Block* block, int direction) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    ledger_.CountActive(*block, direction);
  }
  void CountSplitBlock(const Block* block, int direction) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    ledger_.CountSplitBlock(*block, direction);
  }

  // ---------------------------------------------------------------- debug modes

  GuardedBlock Guarded(const Block* block) const {
    return GuardedBlock{block->addr, block->size, block->addr + front_bytes_, block->requested,
                        block->alloc_stream};
  }

  // At a user's free: verifies the bands now and marks the block for poisoning when its free
  // completes (ReturnToPool or PushReuseCache). The report names the allocation's history entry
  // when record_history is on.
  // Canaries: the allocation at `addr` is marked as being freed and its bands' geometry
  // returned, for a check made without the lock.
  absl::StatusOr<GuardedBlock> BeginCheckedFree(DevicePtr addr) {
    MutexLock lock(&mu_);
    if (shut_down_) return ShutDownError();
    auto it = allocated_or_cached_.find(addr - front_bytes_);
    if (it == allocated_or_cached_.end() || it->second->state != BlockState::kAllocated ||
        it->second->freeing) {
      return UnknownPointerError("free", addr);
    }
    it->second->freeing = true;
    GuardedBlock guarded = Guarded(it->second);
    // A destroyed stream can neither be asked about a capture nor synchronized: the bands of a
    // block it allocated are checked by CheckCanaries (after a device synchronization) instead.
    if (frees_.IsDestroyed(guarded.stream)) guarded.stream_dead = true;
    return guarded;
  }

  // `status`: what the band check found (OK without canaries).
  absl::Status CheckOnFree(Block* block, absl::Status status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    // A private pool's freed blocks still belong to its graph, whose replays use their
    // addresses (on any stream): poisoning them would corrupt the replays.
    block->poison_pending =
        guard_.poison_on_free() && !block->segment->single_use && block->pool_id == kDefaultPool;
    return history_.NameAllocation(status, block->addr);
  }

  void PoisonIfPending(Block* block) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!block->poison_pending) return;
    block->poison_pending = false;
    // A destroyed home stream can order nothing, and the next user (any stream, see
    // TakeFromOtherStream) waits on no event: such a block is not poisoned.
    if (frees_.IsDestroyed(block->stream)) return;
    GuardedBlock freed = Guarded(block);
    freed.stream = block->stream;  // every other stream's use has completed by now
    // A failed fill is a device error that the next operation on the device reports too.
    guard_.PoisonFreed(freed).IgnoreError();
  }

  // A block just marked allocated goes back as if freed at once by its own stream.
  void UndoAllocation(Block* block) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    ledger_.CountUserFree(*block);
    allocated_or_cached_.erase(block->addr);
    ReturnToPool(block);
  }

  // ---------------------------------------------------------------- freeing

  // The block is free for its own stream again: coalesce with free neighbours and cache it.
  void ReturnToPool(Block* block) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (debug_) PoisonIfPending(block);
    const bool small = block->segment->small;  // `block` may be merged away below
    ledger_.CountActive(*block, -1);
    Record(TraceAction::kFreeCompleted, block->addr, block->size, block->stream);
    ReleaseBacking(block);
    if (block->segment->single_use) {
      rungs_->RetireRange(block);
    } else {
      heap_.CoalesceAndInsert(block);
    }
    ledger_.SettleVmmSplitStats(small);  // only its pool's pages changed
  }

  // The reuse cache: a freed block waits, whole, for the next request of the size it served,
  // which then takes it without any free-set search, split or coalesce. It is coalesced
  // (FlushReuseCache) before anything that needs the true free space: a request nothing else
  // serves, growth, releasing segments, snapshots and invariant checks.
  // Inline in Free, as it was before the ledger (a call costs the fast path ~20 instructions).
  ABSL_ATTRIBUTE_ALWAYS_INLINE void PushReuseCache(Block* block)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (debug_) PoisonIfPending(block);
    ledger_.CountActiveKeepingPages(*block, -1);  // a cached block keeps its pages
    Record(TraceAction::kFreeCompleted, block->addr, block->size, block->stream);
    block->state = BlockState::kCached;
    CountSplitBlock(block, +1);
    reuse_cache_.Push(block);
  }

  Block* PopReuseCache(PoolId pool, StreamHandle stream, std::size_t rounded)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Block* block = reuse_cache_.Pop(pool, stream, rounded);
    if (block != nullptr) CountSplitBlock(block, -1);
    return block;
  }

  void FlushReuseCache() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (reuse_cache_.empty()) return;
    FlushCachedBlocks(reuse_cache_.TakeAllByAddress());
  }

  // Only the lists of blocks that `stream` allocated last.
  void FlushReuseCacheOf(StreamHandle stream) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (reuse_cache_.empty()) return;
    const std::vector<Block*>& taken = reuse_cache_.TakeStreamByAddress(stream);
    if (!taken.empty()) FlushCachedBlocks(taken);
  }

  void FlushCachedBlocks(const std::vector<Block*>& blocks) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    for (Block* block : blocks) {
      allocated_or_cached_.erase(block->addr);
      ledger_.CountSplitBlock(*block, -1);
      ReleaseBacking(block);
      heap_.CoalesceAndInsert(block);
    }
    ledger_.SettleVmmSplitStats();
  }

  // Returns pending blocks whose events have all completed (stream_ordered_frees.h).
  // `into_reuse_cache` (the allocation path only): a completed free that a plain free would
  // have cached goes into the reuse cache (CompletePendingFree).
  absl::Status ProcessPendingFrees(std::uint64_t synced_through, bool into_reuse_cache = false)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    backing_->FlushDeferredReleases(StreamsNowLocked());
    completing_into_reuse_cache_ = into_reuse_cache;
    absl::Status status = frees_.ReturnCompleted(synced_through);
    completing_into_reuse_cache_ = false;
    return status;
  }

  // A pending free whose every use has completed (its events were queried done): nobody's
  // work touches the block any more. A block of the default pool goes into the reuse cache
  // whole, under the stream that allocated it last (its own, or the one that borrowed it), with
  // its pages still held: no page release and no free mark is recorded now; the mark is
  // recorded on the block's stream if and when the cache is flushed, and the borrowing stream
  // takes it back without borrowing again (docs/design.md, "Why reuse is safe": one event per
  // cross-stream free). With the debug modes a borrowed block returns to the pool instead: its
  // poison fill runs on its own stream, which the borrower is not ordered after.
  void CompletePendingFree(Block* block) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (completing_into_reuse_cache_ && block->pool_id == kDefaultPool &&
        (block->alloc_stream == block->stream || !debug_) && block->foreign_uses.empty() &&
        !block->segment->single_use && !frees_.IsDestroyed(block->stream) &&
        !frees_.IsDestroyed(block->alloc_stream) && reuse_cache_.HasRoomFor(block->size)) {
      allocated_or_cached_.try_emplace(
          block->addr, block);  // cached blocks stay in allocated_or_cached_ (see Free)
      PushReuseCache(block);
      return;
    }
    ReturnToPool(block);
  }

  // Waits for every pending free (a device-wide synchronization; empty-cache and OOM paths).
  absl::Status SynchronizePendingFrees() {
    std::uint64_t synced_through = 0;
    {
      MutexLock lock(&mu_);
      if (!frees_.has_pending()) return absl::OkStatus();
      ++stats_.num_sync_all_streams;
      synced_through = frees_.newest_order();
    }
    // The lock is dropped for the synchronization: what other threads free meanwhile is not
    // covered by it (their streams' work may have been queued after it began).
    if (absl::Status s = device_->SynchronizeDevice(); !s.ok()) return s;
    MutexLock lock(&mu_);
    graph_pools_.MarkSynchronized(synced_through);
    return ProcessPendingFrees(synced_through);
  }

  // The ladder's first rung: cached memory above the soft budget goes back before growing by
  // `growth` (oom_rungs.h).
  absl::Status ReleaseForSoftBudget(std::size_t growth) {
    absl::StatusOr<std::vector<Segment*>> released;
    {
      MutexLock lock(&mu_);
      released = rungs_->ReleaseAboveSoftBudget(growth);
    }
    if (!released.ok()) return released.status();
    return FreeSegmentMemory(*released);
  }

  // The ladder's second rung: segment mode gives back every wholly free segment; virtual memory
  // synchronizes the device, so that pages whose last use may still run can give their chunks.
  absl::Status ReleaseCachedOrSynchronize(bool* released_any) {
    CacheRelease release;
    {
      MutexLock lock(&mu_);
      release = rungs_->ReleaseCached();
    }
    *released_any = release.synchronize || !release.detached.empty();
    if (!release.synchronize) return FreeSegmentMemory(release.detached);
    if (absl::Status s = device_->SynchronizeDevice(); !s.ok()) return s;
    MutexLock lock(&mu_);
    rungs_->Synchronized(release.synced_through);
    return absl::OkStatus();
  }

  // Frees detached segments outside the lock. Their bytes were moved from reserved_bytes to
  // the limits' releasing bytes when they were detached, and leave it only now, so concurrent
  // growth never sees room the device does not have yet (the budget holds at every instant).
  absl::Status FreeSegmentMemory(const std::vector<Segment*>& segments) {
    absl::Status status = absl::OkStatus();
    std::int64_t freed_calls = 0;
    std::size_t freed_bytes = 0;
    for (Segment* segment : segments) {
      status.Update(device_->Free(segment->base));
      ++freed_calls;
      freed_bytes += segment->size;
      delete segment;
    }
    if (freed_calls > 0) {
      MutexLock lock(&mu_);
      segment_backing_->Freed(freed_calls, freed_bytes);
    }
    return status;
  }

  // ---------------------------------------------------------------- reports

  // The ladder's last rung: the report (oom_ladder.h) from what the allocator holds now, the
  // observers called with no lock held (they may call back into the allocator: stats,
  // empty_cache), the error.
  absl::Status OutOfMemory(const GrowthRequest& request, std::size_t segment_size,
                           const absl::Status& device_error) {
    OomFacts facts{
        .device = device_->Capabilities().ordinal,
        .stream = request.stream,
        .requested_bytes = request.size,
        .rounded_bytes = request.rounded,
        .segment_bytes = segment_size,
        .device_total_bytes = device_->Capabilities().total_bytes,
        .mem_info = device_->MemInfo(),
        .device_error = device_error,
    };
    OomReport report;
    std::vector<CachingAllocator::OomObserver> observers;
    {
      MutexLock lock(&mu_);
      rungs_->GatherOomFacts(&facts);
      report = BuildOomReport(facts);
      ++stats_.num_ooms;
      Record(TraceAction::kOom, 0, request.size, request.stream);
      last_oom_ = report;
      observers = oom_observers_;
    }
    const std::string observer_failure = NotifyOomObservers(observers, report);
    return absl::ResourceExhaustedError(absl::StrCat(report.ToString(), observer_failure));
  }

  absl::Status UnknownPointerError(const char* operation, DevicePtr addr) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto it = heap_.segments().upper_bound(addr);
    if (it != heap_.segments().begin()) {
      const Segment* segment = std::prev(it)->second;
      if (addr < segment->base + segment->size) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "vramcache: %s of %#x: not a live allocation (a double free, or a pointer into the "
            "middle of a block of the %d-byte segment at %#x)",
            operation, addr, segment->size, segment->base));
      }
    }
    return absl::InvalidArgumentError(absl::StrFormat(
        "vramcache: %s of %#x: this pointer was never allocated by vramcache on device %d",
        operation, addr, device_->Capabilities().ordinal));
  }

  static absl::Status ShutDownError() {
    return absl::FailedPreconditionError("vramcache: the allocator was shut down");
  }

  void Record(TraceAction action, DevicePtr addr, std::size_t size, StreamHandle stream)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    history_.Record(action, addr, size, stream);
  }

  // ---------------------------------------------------------------- invariants

  absl::Status MaybeCheckInvariants() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!config_.check_invariants) return absl::OkStatus();
    return CheckInvariantsLocked();
  }

  void CheckInvariantsOrDie() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (absl::Status s = CheckInvariantsLocked(); !s.ok()) {
      fprintf(stderr, "vramcache invariant violated: %s\n", std::string(s.message()).c_str());
      abort();
    }
  }

  absl::Status CheckInvariantsLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return CheckAllocatorInvariants(AllocatorStateView{
        .segments = heap_.segments(),
        .small_free = heap_.small_free(),
        .large_free = heap_.large_free(),
        .allocated_or_cached = allocated_or_cached_,
        .first_fit_segments = heap_.first_fit_segments(),
        .reuse_cache = reuse_cache_,
        .vmm = vmm_ != nullptr ? &vmm_->chunks() : nullptr,
        .stats = stats_,
    });
  }

  Device* const device_;
  const AllocatorConfig config_;
  Clock* const clock_;
  // The rounder of roundup_power2_divisions now, read by Allocate before it takes the lock;
  // every rounder ever installed stays in rounders_ until the allocator goes, so a reader never
  // sees one freed (a settings change is rare; each costs a few hundred bytes).
  std::atomic<const SizeRounder*> rounder_{nullptr};
  std::vector<std::unique_ptr<const SizeRounder>> rounders_ ABSL_GUARDED_BY(mu_);
  // What _set_allocator_settings may change (runtime_settings.h); config_ keeps the values
  // from construction.
  RuntimeSettings settings_ ABSL_GUARDED_BY(mu_);
  DebugGuard guard_;               // the debug modes' policy (stateless)
  const bool debug_;               // any debug mode on: the hot path checks this one flag
  const std::size_t front_bytes_;  // canaries' front band: user pointer = block + this

  mutable Mutex mu_;
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
  // Allocated blocks, and blocks waiting in the reuse cache (so that reusing one needs no
  // insert), by address.
  absl::flat_hash_map<DevicePtr, Block*> allocated_or_cached_ ABSL_GUARDED_BY(mu_);
  // Other devices, for record_stream with their streams (Registry sets it); null: none known.
  std::function<Device*(int)> peer_devices_ ABSL_GUARDED_BY(mu_);
  ReuseCache reuse_cache_ ABSL_GUARDED_BY(mu_);
  GraphPools graph_pools_ ABSL_GUARDED_BY(mu_){device_};  // captures and private pools
  // An alias of the graph pools' captures for Allocate only, whose code stays as it is while
  // the fast path is tuned; elsewhere graph_pools_.capture_under_way().
  const std::vector<CaptureToPool>& captures_ ABSL_GUARDED_BY(mu_) = graph_pools_.captures();
  std::vector<CachingAllocator::OomObserver> oom_observers_ ABSL_GUARDED_BY(mu_);
  // Where the segments' memory comes from (backing.h): device allocations or virtual memory.
  std::unique_ptr<Backing> backing_ ABSL_PT_GUARDED_BY(mu_);  // set once, at construction
  // The same backing by its type, for the steps only one mode has (null in the other).
  VmmBacking* vmm_ ABSL_PT_GUARDED_BY(mu_) = nullptr;
  SegmentBacking* segment_backing_ ABSL_PT_GUARDED_BY(mu_) = nullptr;
  bool single_use_ranges_ =
      false;  // unmap_on_free in virtual-memory mode; set once, at construction
  DeviceStats stats_ ABSL_GUARDED_BY(mu_);
  StatsLedger ledger_ ABSL_GUARDED_BY(mu_){&stats_, config_.max_split_size};  // writes stats_
  BlockHeap heap_ ABSL_GUARDED_BY(mu_){&ledger_, clock_,
                                       UsesVirtualMemory(config_, device_->Capabilities())};
  Placement placement_ ABSL_GUARDED_BY(mu_){
      &heap_, &settings_,
      UsesVirtualMemory(config_, device_->Capabilities())};  // which free block serves a request
  // Pending frees, destroyed streams, borrowing's events (stream_ordered_frees.h); a completed
  // free comes back through ReturnToPool.
  StreamOrderedFrees frees_ ABSL_GUARDED_BY(mu_){
      device_, &heap_, &ledger_,
      [this](Block* block) ABSL_NO_THREAD_SAFETY_ANALYSIS { CompletePendingFree(block); }};
  AllocationHistory history_ ABSL_GUARDED_BY(mu_);  // empty unless record_history
  std::optional<OomReport> last_oom_ ABSL_GUARDED_BY(mu_);
  GrowthLimits limits_ ABSL_GUARDED_BY(mu_);  // budget, fraction, soft budget, bytes in flight
  // Set while the allocation path returns completed frees (ProcessPendingFrees).
  bool completing_into_reuse_cache_ ABSL_GUARDED_BY(mu_) = false;
  // Growth, releases and the out-of-memory ladder's steps under the lock (oom_rungs.h); made
  // once the backing is.
  RungsHost rungs_host_{this};
  std::optional<OomRungs> rungs_ ABSL_GUARDED_BY(mu_);
};

// ------------------------------------------------------------------ facade

CachingAllocator::CachingAllocator(Device* device, const AllocatorConfig& config, Clock* clock)
    : impl_(std::make_unique<CachingAllocatorImpl>(device, config, clock)) {}
CachingAllocator::~CachingAllocator() = default;

namespace {
// Pass-through (caching:0): frees that completed meanwhile (record_stream's) go back to the
// device after each call. Out of line, so that the caching path's facade calls below are plain
// tail calls (with this inlined they kept a full frame: ~20 instructions per call, 3% of a
// replay's; callgrind, docs/benchmarks.md).
[[gnu::noinline]] absl::StatusOr<void*> PassThroughAllocate(CachingAllocatorImpl& impl,
                                                            std::size_t size, StreamHandle stream) {
  absl::StatusOr<void*> result = impl.Allocate(size, stream);
  if (absl::Status s = impl.ReleaseCompletedFrees(); !s.ok() && result.ok()) {
    // As CachingAllocator::Free in this mode.
    impl.Free(*result).IgnoreError();
    impl.ReleaseCompletedFrees().IgnoreError();
    return s;
  }
  return result;
}
[[gnu::noinline]] absl::Status PassThroughFree(CachingAllocatorImpl& impl, void* ptr) {
  absl::Status status = impl.Free(ptr);
  status.Update(impl.ReleaseCompletedFrees());
  return status;
}
}  // namespace

absl::StatusOr<void*> CachingAllocator::Allocate(std::size_t size, StreamHandle stream) {
  if (!impl_->caching()) return PassThroughAllocate(*impl_, size, stream);
  return impl_->Allocate(size, stream);
}
absl::Status CachingAllocator::Free(void* ptr) {
  if (!impl_->caching()) return PassThroughFree(*impl_, ptr);
  return impl_->Free(ptr);
}
absl::Status CachingAllocator::RecordStream(void* ptr, StreamHandle stream) {
  return impl_->RecordStream(ptr, stream);
}
absl::Status CachingAllocator::StreamDestroyed(StreamHandle stream) {
  return impl_->StreamDestroyed(stream);
}
void CachingAllocator::BeginAllocateToPool(PoolId pool, std::function<bool(StreamHandle)> filter) {
  impl_->BeginAllocateToPool(pool, std::move(filter));
}
absl::Status CachingAllocator::EndAllocateToPool(PoolId pool) {
  return impl_->EndAllocateToPool(pool);
}
absl::Status CachingAllocator::ReleasePool(PoolId pool) { return impl_->ReleasePool(pool); }
absl::Status CachingAllocator::EmptyCache() { return impl_->EmptyCache(); }
absl::Status CachingAllocator::CheckCanaries() { return impl_->CheckCanaries(); }
absl::Status CachingAllocator::EnablePeerAccess(int peer_ordinal) {
  return impl_->EnablePeerAccess(peer_ordinal);
}
absl::Status CachingAllocator::Shutdown() { return impl_->Shutdown(); }
DeviceStats CachingAllocator::GetStats() const { return impl_->GetStats(); }
void CachingAllocator::ResetPeakStats() { impl_->ResetPeakStats(); }
void CachingAllocator::ResetAccumulatedStats() { impl_->ResetAccumulatedStats(); }
std::vector<SegmentInfo> CachingAllocator::Snapshot() const { return impl_->Snapshot(); }
absl::StatusOr<std::pair<DevicePtr, std::size_t>> CachingAllocator::BaseAllocation(
    const void* ptr) const {
  return impl_->BaseAllocation(ptr);
}
std::size_t CachingAllocator::LargestFreeBlock() const { return impl_->LargestFreeBlock(); }
std::vector<TraceEntry> CachingAllocator::History() const { return impl_->History(); }
std::optional<OomReport> CachingAllocator::LastOom() const { return impl_->LastOom(); }
void CachingAllocator::SetBudget(std::size_t bytes) { impl_->SetBudget(bytes); }
void CachingAllocator::SetPeerDevices(std::function<Device*(int)> resolver) {
  impl_->SetPeerDevices(std::move(resolver));
}
absl::StatusOr<std::size_t> CachingAllocator::SetMemoryFraction(double fraction) {
  return impl_->SetMemoryFraction(fraction);
}
std::size_t CachingAllocator::Budget() const { return impl_->Budget(); }
std::size_t CachingAllocator::SoftBudget() const { return impl_->SoftBudget(); }
void CachingAllocator::AttachOomObserver(OomObserver observer) {
  impl_->AttachOomObserver(std::move(observer));
}
absl::StatusOr<std::size_t> CachingAllocator::AllocationSize(const void* ptr) const {
  return impl_->AllocationSize(ptr);
}
absl::Status CachingAllocator::CheckInvariants() const { return impl_->CheckInvariants(); }
AllocatorConfig CachingAllocator::config() const { return impl_->config(); }
absl::Status CachingAllocator::ApplyRuntimeSettings(const RuntimeSettings& settings) {
  return impl_->ApplyRuntimeSettings(settings);
}
Device* CachingAllocator::device() const { return impl_->device(); }

}  // namespace vramcache
