// The caching allocator's facade: the lock, the pointer map (allocated blocks and those in the
// reuse cache), the allocation and free paths that order the components' steps, shutdown, and
// every device call that can block (a segment's Malloc and Free, device synchronizations, the
// canary check at a free), made with the lock dropped. The components it calls with the lock
// held each keep one concern: the block heap, placement, the reuse cache, a block's moves
// between its states (block_lifecycle.h), stream-ordered frees, stream uses, graph pools, the
// backing, the growth limits, the out-of-memory rungs, the statistics ledger, the history, the
// debug modes' steps and the queries. Non-blocking device calls (event record/query) run under
// the lock.
#include "allocator/core/caching_allocator.h"

#include <atomic>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "allocator/base/mutex.h"
#include "allocator/core/allocation_history.h"
#include "allocator/core/allocator_queries.h"
#include "allocator/core/block_heap.h"
#include "allocator/core/block_lifecycle.h"
#include "allocator/core/debug_guard.h"
#include "allocator/core/debug_hooks.h"
#include "allocator/core/graph_pools.h"
#include "allocator/core/growth_limits.h"
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
#include "allocator/core/stream_uses.h"
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
        front_bytes_(guard_.front_bytes()),
        reuse_cache_(
            EffectiveReuseCacheBytes(config, UsesVirtualMemory(config, device->Capabilities()))),
        history_(config, clock),
        limits_(config, device->Capabilities().total_bytes) {
    MutexLock lock(&mu_);  // (nothing else can see the allocator yet; the analysis wants it)
    VmmBacking* vmm = nullptr;
    SegmentBacking* segments = nullptr;
    if (UsesVirtualMemory(config, device->Capabilities())) {
      auto backing = std::make_unique<VmmBacking>(device, config, &ledger_, limits_.budget());
      vmm = backing.get();
      backing_ = std::move(backing);
      single_use_ranges_ = config.unmap_on_free;
    } else {
      auto backing = std::make_unique<SegmentBacking>(&stats_, &ledger_, &limits_,
                                                      &heap_.small_free(), &heap_.large_free());
      segments = backing.get();
      backing_ = std::move(backing);
    }
    if (guard_.active()) debug_ = &debug_hooks_.emplace(&guard_, &frees_, &history_);
    queries_.emplace(AllocatorQueries::Parts{
        .allocated_or_cached = &allocated_or_cached_,
        .heap = &heap_,
        .reuse_cache = &reuse_cache_,
        .backing = backing_.get(),
        .chunks = vmm != nullptr ? &vmm->chunks() : nullptr,
        .limits = &limits_,
        .settings = &settings_,
        .stats = &stats_,
        .device = device_,
        .front_bytes = front_bytes_,
    });
    blocks_.emplace(BlockLifecycle::Parts{
        .allocated_or_cached = &allocated_or_cached_,
        .heap = &heap_,
        .placement = &placement_,
        .ledger = &ledger_,
        .reuse_cache = &reuse_cache_,
        .backing = backing_.get(),
        .graph_pools = &graph_pools_,
        .frees = &frees_,
        .history = &history_,
        .debug = debug_,
        .queries = &*queries_,
        .stats = &stats_,
        .cross_stream = config.cross_stream,
        .front_bytes = front_bytes_,
        .check_invariants = config.check_invariants,
    });
    rungs_.emplace(OomRungs::Parts{
        .host = &*blocks_,
        .heap = &heap_,
        .placement = &placement_,
        .ledger = &ledger_,
        .stats = &stats_,
        .limits = &limits_,
        .backing = backing_.get(),
        .vmm = vmm,
        .segments = segments,
        .graph_pools = &graph_pools_,
        .frees = &frees_,
        .settings = &settings_,
        .caching = config.caching,
        .single_use_ranges = single_use_ranges_,
    });
    blocks_->AttachRungs(&*rungs_);
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
          if (absl::Status s = blocks_->ReturnCompletedFrees(/*synced_through=*/0,
                                                             /*into_reuse_cache=*/true);
              !s.ok()) {
            return s;
          }
        }
      }
      // The fast path: a block this stream freed whole.
      if (Block* block =
              fresh_addresses ? nullptr : blocks_->PopReuseCache(pool, stream, rounded)) {
        ++stats_.num_cache_hits;
        return blocks_->MarkAllocated(block, size, rounded, stream);
      }
      // The slow path: the heap, then another stream's cache (BlockLifecycle::ServeFromHeap).
      GrowthRequest request{size, rounded, small, stream, pool};
      if (auto served = blocks_->ServeFromHeap(request, fresh_addresses, capturing_known)) {
        return *std::move(served);
      }
      capturing = *capturing_known;
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
      return queries_->UnknownPointerError("free", addr);
    }
    Block* block = it->second;
    absl::Status guard_status = absl::OkStatus();
    if (debug_ != nullptr) guard_status = debug_->OnUserFree(block, band_status);
    ledger_.CountUserFree(*block);
    history_.Record(TraceAction::kFreeRequested, block->addr, block->size, block->alloc_stream);
    if (block->stream_uses.empty() && block->foreign_uses.empty() &&
        block->alloc_stream == block->stream && !block->used_by_destroyed_stream &&
        !block->segment->single_use && reuse_cache_.HasRoomFor(block->size)) {
      blocks_->PushReuseCache(block);  // stays in the pointer map: a reuse needs no insert
      if (!guard_status.ok()) return guard_status;
      return MaybeCheckInvariants();
    }
    allocated_or_cached_.erase(it);
    // A plain free's only call that a global-mode capture on another thread forbids is made
    // (relaxed) by the page release; the debug modes and single-use ranges may make more.
    std::optional<RelaxedCapture> relaxed;
    if (debug_ != nullptr || block->segment->single_use) relaxed.emplace(device_);
    if (absl::Status s = blocks_->EndUserFree(block); !s.ok()) return s;
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
    if (debug_ == nullptr) return absl::OkStatus();
    return debug_->CheckLiveBlocks(allocated_or_cached_, graph_pools_.capture_under_way());
  }

  absl::Status RecordStream(void* ptr, StreamHandle stream) {
    const auto addr = reinterpret_cast<DevicePtr>(ptr);
    MutexLock lock(&mu_);
    auto it = allocated_or_cached_.find(addr - front_bytes_);
    if (it == allocated_or_cached_.end() || it->second->state != BlockState::kAllocated) {
      return queries_->UnknownPointerError("record_stream", addr);
    }
    return stream_uses_.Record(it->second, stream, addr);
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
    blocks_->FlushReuseCache();
    // From now on no event may be recorded on the handle (until a new stream gets it): what is
    // cached for it is parked below behind an event recorded now, and afterwards needs none.
    frees_.MarkDestroyed(stream);
    backing_->StreamDestroyed(stream);
    StreamUses::MarkUsedByDestroyed(allocated_or_cached_, stream);
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
    backing_->CaptureEnded(blocks_->Streams());
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
    if (!release.finish) return FreeSegmentMemory(release.detached);
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
      released = blocks_->ForgetAll();  // live allocations' memory goes back with the segments
    }
    absl::Status status = absl::OkStatus();
    for (EventHandle event : events) status.Update(device_->DestroyEvent(event));
    // Only when something goes back: an allocator owning nothing may outlive its device.
    std::optional<RelaxedCapture> relaxed;
    if (!released.empty()) relaxed.emplace(device_);
    {
      MutexLock lock(&mu_);
      status.Update(backing_->ReleaseAllAtShutdown(&released));  // virtual memory's, whole
    }
    status.Update(FreeSegmentMemory(released));  // segment mode's
    return status;
  }

  DeviceStats GetStats() const {
    MutexLock lock(&mu_);
    return queries_->Stats();
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
    return queries_->AllocationSize(reinterpret_cast<DevicePtr>(ptr));
  }

  absl::StatusOr<std::pair<DevicePtr, std::size_t>> BaseAllocation(const void* ptr) const {
    MutexLock lock(&mu_);
    return queries_->BaseAllocation(reinterpret_cast<DevicePtr>(ptr));
  }

  std::size_t LargestFreeBlock() const {
    MutexLock lock(&mu_);
    return queries_->LargestFreeBlock();
  }

  std::vector<SegmentInfo> Snapshot() const {
    MutexLock lock(&mu_);
    return queries_->Snapshot();
  }

  std::vector<TraceEntry> History() const {
    MutexLock lock(&mu_);
    return history_.OldestFirst();
  }

  std::optional<OomReport> LastOom() const {
    MutexLock lock(&mu_);
    return rungs_->last_oom();
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
    stream_uses_.SetPeerDevices(std::move(resolver));
  }

  std::size_t Budget() const {
    MutexLock lock(&mu_);
    return limits_.budget();
  }

  // An atomic in the limits: read without the lock (the growth path asks before taking it).
  std::size_t SoftBudget() const { return ABSL_TS_UNCHECKED_READ(limits_).soft_budget(); }

  void AttachOomObserver(CachingAllocator::OomObserver observer) {
    MutexLock lock(&mu_);
    rungs_->AttachOomObserver(std::move(observer));
  }

  absl::Status CheckInvariants() const {
    MutexLock lock(&mu_);
    return queries_->CheckInvariants();
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
      // The backing is set once, at construction: read without the lock.
      const int candidates =
          tight_ < preferred_ && ABSL_TS_UNCHECKED_READ(impl_->backing_)->RetriesWithTightSegment()
              ? 2
              : 1;
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

  // Canaries: the allocation at `addr` is marked as being freed and its bands' geometry
  // returned, for a check made without the lock.
  absl::StatusOr<GuardedBlock> BeginCheckedFree(DevicePtr addr) {
    MutexLock lock(&mu_);
    if (shut_down_) return ShutDownError();
    auto it = allocated_or_cached_.find(addr - front_bytes_);
    if (it == allocated_or_cached_.end() || it->second->state != BlockState::kAllocated ||
        it->second->freeing) {
      return queries_->UnknownPointerError("free", addr);
    }
    return debug_->BeginCheckedFree(it->second);
  }

  // ---------------------------------------------------------------- blocking steps

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
    return blocks_->ReturnCompletedFrees(synced_through, /*into_reuse_cache=*/false);
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
      backing_->SegmentsFreed(freed_calls, freed_bytes);
    }
    return status;
  }

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
    OomRungs::OutOfMemoryOutcome outcome;
    {
      MutexLock lock(&mu_);
      outcome = rungs_->OutOfMemory(std::move(facts));
    }
    const std::string observer_failure = NotifyOomObservers(outcome.observers, outcome.report);
    return absl::ResourceExhaustedError(absl::StrCat(outcome.report.ToString(), observer_failure));
  }

  static absl::Status ShutDownError() {
    return absl::FailedPreconditionError("vramcache: the allocator was shut down");
  }

  absl::Status MaybeCheckInvariants() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!config_.check_invariants) return absl::OkStatus();
    return queries_->CheckInvariants();
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
  // The debug modes' device policy (stateless): the padding and the band check at a free, made
  // without the lock.
  DebugGuard guard_;
  const std::size_t front_bytes_;  // canaries' front band: user pointer = block + this

  mutable Mutex mu_;
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
  // Allocated blocks, and blocks waiting in the reuse cache (so that reusing one needs no
  // insert), by address.
  absl::flat_hash_map<DevicePtr, Block*> allocated_or_cached_ ABSL_GUARDED_BY(mu_);
  ReuseCache reuse_cache_ ABSL_GUARDED_BY(mu_);
  GraphPools graph_pools_ ABSL_GUARDED_BY(mu_){device_};  // captures and private pools
  // Where the segments' memory comes from (backing.h): device allocations or virtual memory.
  std::unique_ptr<Backing> backing_ ABSL_PT_GUARDED_BY(mu_);  // set once, at construction
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
  // free comes back through the block lifecycle.
  StreamOrderedFrees frees_ ABSL_GUARDED_BY(mu_){
      device_, &heap_, &ledger_,
      [this](Block* block) ABSL_NO_THREAD_SAFETY_ANALYSIS { blocks_->CompletePendingFree(block); }};
  // record_stream's streams, a borrower's, a destroyed stream's (stream_uses.h).
  StreamUses stream_uses_ ABSL_GUARDED_BY(mu_){device_->Capabilities().ordinal, &frees_};
  AllocationHistory history_ ABSL_GUARDED_BY(mu_);  // empty unless record_history
  GrowthLimits limits_ ABSL_GUARDED_BY(mu_);  // budget, fraction, soft budget, bytes in flight
  // The components made once the backing is, at construction. The debug modes' steps (null
  // unless one is on: the hot path checks this pointer), the answers read under the lock, a
  // block's moves between its states (also the rungs' host), and growth and releases.
  std::optional<DebugHooks> debug_hooks_ ABSL_GUARDED_BY(mu_);
  const DebugHooks* debug_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::optional<AllocatorQueries> queries_ ABSL_GUARDED_BY(mu_);
  std::optional<BlockLifecycle> blocks_ ABSL_GUARDED_BY(mu_);
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
