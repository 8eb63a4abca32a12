// The caching allocator's facade: the lock, the allocation and free paths that order the
// components' steps, shutdown, and the entry points that drop the lock for a device call that
// can block (the canary check at a free, synchronizations; growth and segment frees are the
// blocking steps', blocking_steps.h). The components (allocator_components.h), called with the
// lock held, each keep one concern: the block heap, placement, the reuse cache, a block's moves
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

#include "absl/strings/str_format.h"
#include "allocator/base/mutex.h"
#include "allocator/core/allocator_components.h"
#include "allocator/core/blocking_steps.h"
#include "allocator/core/debug_guard.h"
#include "allocator/core/relaxed_capture.h"
#include "allocator/core/size_classes.h"

namespace vramcache {

class CachingAllocatorImpl {
 public:
  CachingAllocatorImpl(Device* device, const AllocatorConfig& config, Clock* clock)
      : device_(device),
        config_(config),
        guard_(device, config),
        front_bytes_(guard_.front_bytes()),
        components_(device, config, clock, &guard_),
        blocking_(device, &mu_, &components_, &shut_down_, config.caching),
        fronts_(FrontsParts(config, components_)) {
    rounders_.push_back(std::make_unique<const SizeRounder>(config.roundup_power2_divisions));
    rounder_.store(rounders_.back().get(), std::memory_order_release);
    MutexLock lock(&mu_);
    components_.lifecycle.AttachFronts(&fronts_);
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
    // Several threads: the calling thread's front first, without the allocator's lock.
    if (fronts_.active() && !fronts_.capturing()) [[unlikely]] {
      if (ThreadFront* front = fronts_.Mine()) {
        if (Block* block = ThreadFronts::TryReuse(*front, stream, size, rounded)) {
          return reinterpret_cast<void*>(block->addr);  // no canaries with fronts: no band
        }
      }
    }

    PoolId pool = kDefaultPool;
    bool capturing = false;
    {
      MutexLock lock(&mu_);
      if (shut_down_) return AllocatorShutDownError();
      components_.frees.StreamUsed(stream);  // the handle names a new stream
      pool = components_.graph_pools.PoolFor(stream);
      // unmap_on_free: every allocation gets fresh addresses (TryGrow); pass-through:
      // every allocation is a device allocation (TryGrow).
      const bool fresh_addresses =
          (components_.single_use_ranges || !config_.caching) && pool == kDefaultPool;
      // Pending frees first (they may make a block free again); nothing recorded inside a
      // capture may be queried.
      // Whether the stream captures is asked of the device only when an answer is needed.
      std::optional<bool> capturing_known;
      if (components_.frees.has_pending()) {
        capturing_known = components_.graph_pools.Capturing(stream);
        if (!*capturing_known) {
          if (absl::Status s =
                  components_.lifecycle.ReturnCompletedFrees(/*synced_through=*/0,
                                                             /*into_reuse_cache=*/true);
              !s.ok()) {
            return s;
          }
        }
      }
      // The fast path: a block this stream freed whole.
      if (Block* block = fresh_addresses
                             ? nullptr
                             : components_.lifecycle.PopReuseCache(pool, stream, rounded)) {
        ++components_.stats.num_cache_hits;
        return components_.lifecycle.MarkAllocated(block, size, rounded, stream);
      }
      // The slow path: the heap, then another stream's cache (BlockLifecycle::ServeFromHeap).
      // Fronts start when a second thread comes this way (a new thread's stream has nothing
      // cached yet), and frozen ones are flushed here; neither is the fast path's business.
      fronts_.NoteThread();
      fronts_.FlushIfFrozen();
      GrowthRequest request{size, rounded, small, stream, pool};
      const bool fronts_held = fronts_.holds_blocks();
      if (auto served =
              components_.lifecycle.ServeFromHeap(request, fresh_addresses, capturing_known)) {
        return *std::move(served);
      }
      // Growth flushed the per-thread fronts first (the reuse cache's flush): their blocks may
      // serve the request now.
      if (fronts_held) {
        if (auto served =
                components_.lifecycle.ServeFromHeap(request, fresh_addresses, capturing_known)) {
          return *std::move(served);
        }
      }
      capturing = *capturing_known;
    }
    return blocking_.Grow(GrowthRequest{size, rounded, small, stream, pool, capturing});
  }

  ABSL_ATTRIBUTE_ALWAYS_INLINE absl::Status Free(void* ptr) {
    const auto addr = reinterpret_cast<DevicePtr>(ptr);
    if (ptr == nullptr) return absl::OkStatus();  // as cudaFree(nullptr) and PyTorch
    // Several threads: a block the calling thread's front has out goes back to it.
    const bool fronts_active = fronts_.active();
    if (fronts_active) [[unlikely]] {
      if (ThreadFront* front = fronts_.Mine(); front != nullptr && fronts_.TryCache(*front, addr)) {
        return absl::OkStatus();
      }
    }
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
    // No NoteThread or FlushIfFrozen here: fronts start at a second thread's slow-path
    // allocation, and a frozen front only sends its requests here until the next slow path
    // flushes it.
    MutexLock lock(&mu_);
    auto it = components_.allocated_or_cached.find(addr - front_bytes_);
    if (guard_.canaries()) {
      if (shut_down_) return AllocatorShutDownError();
      // Marked freeing, nobody else could free or reuse it meanwhile.
      it->second->freeing = false;
    } else if (it == components_.allocated_or_cached.end() ||
               it->second->state != BlockState::kAllocated || it->second->freeing) {
      return components_.queries.UnknownPointerError("free", addr);
    }
    Block* block = it->second;
    // Several threads: the per-thread fronts' part, out of line (one call site on this path).
    if (fronts_active || block->front != nullptr) [[unlikely]] {
      switch (fronts_.TakeFree(block, fronts_active)) {
        case ThreadFronts::FreeOutcome::kRefused:
          return components_.queries.UnknownPointerError("free", addr);
        case ThreadFronts::FreeOutcome::kCached:
          return absl::OkStatus();
        case ThreadFronts::FreeOutcome::kNotTheirs:
          break;
      }
    }
    absl::Status guard_status = absl::OkStatus();
    if (components_.debug != nullptr)
      guard_status = components_.debug->OnUserFree(block, band_status);
    components_.ledger.CountUserFree(*block);
    components_.history.Record(TraceAction::kFreeRequested, block->addr, block->size,
                               block->alloc_stream);
    if (block->stream_uses.empty() && block->foreign_uses.empty() &&
        block->alloc_stream == block->stream && !block->used_by_destroyed_stream &&
        !block->segment->single_use && components_.reuse_cache.HasRoomFor(block->size)) {
      components_.lifecycle.PushReuseCache(
          block);  // stays in the pointer map: a reuse needs no insert
      if (!guard_status.ok()) return guard_status;
      return MaybeCheckInvariants();
    }
    components_.allocated_or_cached.erase(it);
    // A plain free's only call that a global-mode capture on another thread forbids is made
    // (relaxed) by the page release; the debug modes and single-use ranges may make more.
    std::optional<RelaxedCapture> relaxed;
    if (components_.debug != nullptr || block->segment->single_use) relaxed.emplace(device_);
    if (absl::Status s = components_.lifecycle.EndUserFree(block); !s.ok()) return s;
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
    return components_.backing->EnablePeerAccess(peer_ordinal);
  }

  absl::Status CheckCanaries() {
    MutexLock lock(&mu_);
    if (components_.debug == nullptr) return absl::OkStatus();
    return components_.debug->CheckLiveBlocks(components_.allocated_or_cached,
                                              components_.graph_pools.capture_under_way());
  }

  absl::Status RecordStream(void* ptr, StreamHandle stream) {
    const auto addr = reinterpret_cast<DevicePtr>(ptr);
    MutexLock lock(&mu_);
    auto it = components_.allocated_or_cached.find(addr - front_bytes_);
    if (it == components_.allocated_or_cached.end() ||
        it->second->state != BlockState::kAllocated ||
        (it->second->front != nullptr && !fronts_.Release(it->second))) {
      return components_.queries.UnknownPointerError("record_stream", addr);
    }
    // A block used by another stream never enters a front (it left its front above).
    return components_.stream_uses.Record(it->second, stream, addr);
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
    components_.lifecycle.FlushReuseCache();  // the fronts' blocks too
    // From now on no event may be recorded on the handle (until a new stream gets it): what is
    // cached for it is parked below behind an event recorded now, and afterwards needs none.
    components_.frees.MarkDestroyed(stream);
    components_.backing->StreamDestroyed(stream);
    components_.lifecycle.StreamDestroyed(stream);
    StreamUses::MarkUsedByDestroyed(components_.allocated_or_cached, stream);
    // Pending frees returning to this stream's list, frees waiting for a capture to end, and the
    // free blocks cached for it wait for its last work (or a synchronization) from now on.
    if (absl::Status s = components_.frees.ParkFor(stream); !s.ok()) return s;
    return MaybeCheckInvariants();
  }

  void BeginAllocateToPool(PoolId pool, std::function<bool(StreamHandle)> filter) {
    MutexLock lock(&mu_);
    components_.graph_pools.BeginCapture(pool, std::move(filter));
    fronts_.SetCapturing(true);  // requests on a capturing stream go to the pool
  }

  absl::Status EndAllocateToPool(PoolId pool) {
    MutexLock lock(&mu_);
    if (absl::Status s = components_.graph_pools.EndCapture(pool); !s.ok()) return s;
    if (components_.graph_pools.capture_under_way()) return absl::OkStatus();
    fronts_.SetCapturing(false);
    // The capture is over: frees that needed events can record them now.
    components_.backing->CaptureEnded(components_.lifecycle.Streams());
    return components_.frees.CaptureEnded();
  }

  absl::Status ReleasePool(PoolId pool) {
    RelaxedCapture relaxed(device_);
    CacheRelease release;
    {
      MutexLock lock(&mu_);
      absl::StatusOr<bool> released_now = components_.graph_pools.DropUse(pool);
      if (!released_now.ok()) return released_now.status();
      if (!*released_now) return absl::OkStatus();
      release = components_.rungs.BeginPoolRelease(pool);
    }
    // Segment mode frees the detached segments. Virtual memory: during a capture no
    // synchronization is allowed, and the next one (EmptyCache, the ladder) reclaims the ranges.
    if (!release.synchronize) return blocking_.FreeSegmentMemory(release.detached);
    if (!device_->SynchronizeDevice().ok()) return absl::OkStatus();
    MutexLock lock(&mu_);
    components_.rungs.Synchronized(release.synced_through);
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
      if (shut_down_ || components_.graph_pools.capture_under_way()) return absl::OkStatus();
      released = components_.rungs.DetachReleasableSegments(/*bytes_wanted=*/SIZE_MAX);
    }
    if (released.empty()) return absl::OkStatus();
    RelaxedCapture relaxed(device_);
    return blocking_.FreeSegmentMemory(released);
  }

  absl::Status EmptyCache() {
    RelaxedCapture relaxed(device_);
    if (absl::Status s = blocking_.SynchronizePendingFrees(); !s.ok()) return s;
    CacheRelease release;
    {
      MutexLock lock(&mu_);
      if (shut_down_) return absl::OkStatus();
      release = components_.rungs.BeginEmptyCache();
    }
    // Segment mode frees the wholly free segments; virtual memory gives back every chunk that
    // free pages can give (after a device synchronization when pages wait for their last use).
    if (!release.finish) return blocking_.FreeSegmentMemory(release.detached);
    if (release.synchronize) {
      if (absl::Status s = device_->SynchronizeDevice(); !s.ok()) return s;
    }
    MutexLock lock(&mu_);
    if (absl::Status s = components_.rungs.FinishEmptyCache(release); !s.ok()) return s;
    return MaybeCheckInvariants();
  }

  absl::Status Shutdown() {
    std::vector<Segment*> released;
    std::vector<EventHandle> events;
    {
      MutexLock lock(&mu_);
      if (shut_down_) return absl::OkStatus();
      shut_down_ = true;
      fronts_.Stop();  // its blocks back in the allocator's hands, for ForgetAll
      events = components_.frees.ForgetAll();
      components_.graph_pools.EndAllCaptures();
      released = components_.lifecycle
                     .ForgetAll();  // live allocations' memory goes back with the segments
    }
    absl::Status status = absl::OkStatus();
    for (EventHandle event : events) status.Update(device_->DestroyEvent(event));
    // Only when something goes back: an allocator owning nothing may outlive its device.
    std::optional<RelaxedCapture> relaxed;
    if (!released.empty()) relaxed.emplace(device_);
    {
      MutexLock lock(&mu_);
      status.Update(
          components_.backing->ReleaseAllAtShutdown(&released));  // virtual memory's, whole
    }
    status.Update(blocking_.FreeSegmentMemory(released));  // segment mode's
    return status;
  }

  DeviceStats GetStats() const {
    MutexLock lock(&mu_);
    DeviceStats stats = components_.queries.Stats();
    fronts_.AddChangesTo(stats);
    return stats;
  }

  void ResetPeakStats() {
    MutexLock lock(&mu_);
    FlushFronts();  // the peaks then start from exact values
    components_.stats.ResetPeak();
  }

  void ResetAccumulatedStats() {
    MutexLock lock(&mu_);
    FlushFronts();
    components_.stats.ResetAccumulated();
  }

  // A block a front holds cached is freed, as one in the reuse cache. Asked of its front rather
  // than by flushing the fronts: the C ABI's record_stream asks this of every allocator.
  absl::StatusOr<std::size_t> AllocationSize(const void* ptr) const {
    const auto addr = reinterpret_cast<DevicePtr>(ptr);
    MutexLock lock(&mu_);
    absl::StatusOr<std::size_t> size = components_.queries.AllocationSize(addr);
    if (size.ok() && fronts_.holds_blocks() &&
        ThreadFronts::Cached(*components_.allocated_or_cached.at(addr - front_bytes_))) {
      return AllocatorQueries::NotLiveError(addr);
    }
    return size;
  }

  // The queries below read blocks: the fronts' cached ones must show as what they are (freed).
  absl::StatusOr<std::pair<DevicePtr, std::size_t>> BaseAllocation(const void* ptr) {
    MutexLock lock(&mu_);
    FlushFronts();
    return components_.queries.BaseAllocation(reinterpret_cast<DevicePtr>(ptr));
  }

  std::size_t LargestFreeBlock() {
    MutexLock lock(&mu_);
    FlushFronts();
    return components_.queries.LargestFreeBlock();
  }

  std::vector<SegmentInfo> Snapshot() {
    MutexLock lock(&mu_);
    FlushFronts();
    return components_.queries.Snapshot();
  }

  std::vector<TraceEntry> History() const {
    MutexLock lock(&mu_);
    return components_.history.OldestFirst();
  }

  std::optional<OomReport> LastOom() const {
    MutexLock lock(&mu_);
    return components_.rungs.last_oom();
  }

  void SetBudget(std::size_t bytes) {
    MutexLock lock(&mu_);
    components_.limits.SetBudget(bytes);
    components_.backing->SetBudget(bytes);
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
      if (shut_down_) return AllocatorShutDownError();
      cap = components_.limits.CapForFraction(fraction);
      // garbage_collection_threshold is a fraction of what may be reserved, as in PyTorch: the
      // soft budget follows the cap.
      components_.limits.SetFractionCap(cap);
      components_.backing->SetBudget(cap);
    }
    // What is cached above the new cap goes back now, as far as live blocks allow.
    std::vector<Segment*> released;
    std::size_t held = 0;
    {
      MutexLock lock(&mu_);
      FlushFronts();
      released = components_.rungs.ReleaseCachedAbove(cap);  // freed below, without the lock
      held = components_.backing->HeldBytes();
    }
    if (absl::Status s = blocking_.FreeSegmentMemory(released); !s.ok()) return s;
    return held > cap ? held - cap : 0;
  }

  void SetPeerDevices(std::function<Device*(int)> resolver) {
    MutexLock lock(&mu_);
    components_.stream_uses.SetPeerDevices(std::move(resolver));
  }

  std::size_t Budget() const {
    MutexLock lock(&mu_);
    return components_.limits.budget();
  }

  // An atomic in the limits: read without the lock (the growth path asks before taking it).
  std::size_t SoftBudget() const {
    return ABSL_TS_UNCHECKED_READ(components_.limits).soft_budget();
  }

  void AttachOomObserver(CachingAllocator::OomObserver observer) {
    MutexLock lock(&mu_);
    components_.rungs.AttachOomObserver(std::move(observer));
  }

  absl::Status CheckInvariants() {
    MutexLock lock(&mu_);
    FlushFronts();
    return components_.queries.CheckInvariants();
  }

  AllocatorConfig config() const {
    AllocatorConfig config = config_;
    MutexLock lock(&mu_);
    components_.settings.ApplyTo(config);
    return config;
  }

  absl::Status ApplyRuntimeSettings(const RuntimeSettings& settings) {
    MutexLock lock(&mu_);
    if (shut_down_) return AllocatorShutDownError();
    if (settings.roundup_power2_divisions != components_.settings.roundup_power2_divisions) {
      rounders_.push_back(std::make_unique<const SizeRounder>(settings.roundup_power2_divisions));
      rounder_.store(rounders_.back().get(), std::memory_order_release);
    }
    // Blocks and segments already counted oversize stay counted until they go (their flags).
    FlushFronts();
    fronts_.SetMaxSplitSize(settings.max_split_size);
    components_.ledger.SetMaxSplitSize(settings.max_split_size);
    components_.settings = settings;
    components_.limits.SetGarbageCollectionThreshold(
        components_.settings.garbage_collection_threshold);
    return absl::OkStatus();
  }
  Device* device() const { return device_; }

 private:
  // Canaries: the allocation at `addr` is marked as being freed and its bands' geometry
  // returned, for a check made without the lock.
  absl::StatusOr<GuardedBlock> BeginCheckedFree(DevicePtr addr) {
    MutexLock lock(&mu_);
    if (shut_down_) return AllocatorShutDownError();
    auto it = components_.allocated_or_cached.find(addr - front_bytes_);
    if (it == components_.allocated_or_cached.end() ||
        it->second->state != BlockState::kAllocated || it->second->freeing) {
      return components_.queries.UnknownPointerError("free", addr);
    }
    return components_.debug->BeginCheckedFree(it->second);
  }

  // The per-thread fronts' blocks back in the allocator's hands (nothing to do when they hold
  // none: a single-threaded program never has any).
  void FlushFronts() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!fronts_.holds_blocks()) return;
    fronts_.FlushAll();
    if (components_.reuse_cache.over_limit()) components_.lifecycle.FlushReuseCache();
  }

  static ThreadFronts::Parts FrontsParts(const AllocatorConfig& config,
                                         AllocatorComponents& components) {
    // Every debug mode, the history and the per-step checks need each free in the allocator's
    // hands; unmap_on_free and pass-through never reuse a block.
    const bool allowed = config.caching && components.debug == nullptr && !config.record_history &&
                         !config.check_invariants && !components.single_use_ranges;
    return ThreadFronts::Parts{
        .stats = &components.stats,
        .ledger = &components.ledger,
        .reuse_cache = &components.reuse_cache,
        .vmm = components.ledger.vmm(),
        .limit_bytes = allowed ? config.thread_cache_bytes : 0,
    };
  }

  absl::Status MaybeCheckInvariants() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!config_.check_invariants) return absl::OkStatus();
    return components_.queries.CheckInvariants();
  }

  Device* const device_;
  const AllocatorConfig config_;
  // The rounder of roundup_power2_divisions now, read by Allocate before it takes the lock;
  // every rounder ever installed stays in rounders_ until the allocator goes, so a reader never
  // sees one freed (a settings change is rare; each costs a few hundred bytes).
  std::atomic<const SizeRounder*> rounder_{nullptr};
  std::vector<std::unique_ptr<const SizeRounder>> rounders_ ABSL_GUARDED_BY(mu_);
  // The debug modes' device policy (stateless): the padding and the band check at a free, made
  // without the lock.
  DebugGuard guard_;
  const std::size_t front_bytes_;  // canaries' front band: user pointer = block + this

  mutable Mutex mu_;
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
  AllocatorComponents components_ ABSL_GUARDED_BY(mu_);
  BlockingSteps blocking_;
  // Per-thread fronts: their hot paths run without mu_ (each front has its lock); the rest with
  // mu_ held.
  ThreadFronts fronts_;
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
