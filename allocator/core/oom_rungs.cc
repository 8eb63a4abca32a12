// The out-of-memory ladder's rungs and the growth and release steps (oom_rungs.h).
#include "allocator/core/oom_rungs.h"

#include <cstdint>
#include <utility>

namespace vramcache {

std::optional<absl::StatusOr<void*>> OomRungs::BeginGrowth(const GrowthRequest& request,
                                                           std::size_t segment_size) {
  if (p_.vmm != nullptr) return GrowAddressSpace(request);
  // Another thread may have freed a fitting block meanwhile (pass-through reuses none).
  p_.host->FlushReuseCache();
  const bool may_reuse = p_.caching || request.pool != kDefaultPool;
  if (Block* block = may_reuse ? p_.placement->FindFreeBlock(request.small, request.pool,
                                                             request.stream, request.rounded)
                               : nullptr) {
    ++p_.stats->num_cache_hits;
    return p_.host->FinishAllocation(block, request);
  }
  // Counted in flight before the device call, so concurrent growth cannot overshoot.
  if (absl::Status s = p_.segments->BeginGrowth(segment_size); !s.ok()) {
    return absl::StatusOr<void*>(s);
  }
  return std::nullopt;
}

absl::StatusOr<void*> OomRungs::ServeFromNewSegment(DevicePtr base, std::size_t segment_size,
                                                    const GrowthRequest& request) {
  Segment* segment = AdoptSegment(base, segment_size, request);
  return p_.host->FinishAllocation(segment->head, request);
}

// Virtual-memory mode's growth: a fitting free block in address space (its missing pages are
// backed by chunks stolen from free pages, else new ones within the budget), else a new
// reserved range. ResourceExhausted when physical memory cannot be found; the range stays.
absl::StatusOr<void*> OomRungs::GrowAddressSpace(const GrowthRequest& request) {
  p_.vmm->chunks().SetEventQueriesAllowed(!request.capturing &&
                                          !p_.graph_pools->capture_under_way());
  if (p_.single_use_ranges && request.pool == kDefaultPool) {
    return AllocateInOwnRange(request);
  }
  p_.host->FlushReuseCache();
  if (Block* block = p_.placement->FindFreeBlock(request.small, request.pool, request.stream,
                                                 request.rounded)) {
    absl::StatusOr<void*> result = p_.host->FinishAllocation(block, request);
    if (result.ok()) ++p_.stats->num_cache_hits;
    return result;
  }
  const std::size_t granularity = p_.vmm->chunks().granularity();
  // More pages than the device or the budget holds can never be backed: no range is reserved.
  const std::size_t pages_bytes = (request.rounded + granularity - 1) / granularity * granularity;
  if (absl::Status fits = p_.limits->CheckPagesCanFit(pages_bytes); !fits.ok()) return fits;
  absl::StatusOr<VmmArena*> arena = p_.vmm->ReserveRange(
      request.rounded, request.small,
      /*private_pool=*/request.pool != kDefaultPool, request.stream, p_.settings->max_split_size);
  if (!arena.ok()) return arena.status();
  Segment* segment = AdoptSegment((*arena)->base(), (*arena)->size(), request);
  segment->arena = *arena;
  segment->pinned = request.pool != kDefaultPool;
  absl::StatusOr<void*> result = p_.host->FinishAllocation(segment->head, request);
  // A failed request keeps no address space: the new range goes back when nothing uses it.
  if (!result.ok() && segment->IsWhollyFree() && segment->arena->live_pages() == 0 &&
      segment->arena->mapped_pages() == 0) {
    DiscardNewSegment(segment);
  }
  p_.ledger->SettleVmmSplitStats();  // a pinned range holds its pages whatever became of it
  return result;
}

// unmap_on_free: a range of its own, whole pages (the cost: up to one page per allocation),
// never shared and never reused once freed.
absl::StatusOr<void*> OomRungs::AllocateInOwnRange(const GrowthRequest& request) {
  const std::size_t granularity = p_.vmm->chunks().granularity();
  const std::size_t bytes = (request.rounded + granularity - 1) / granularity * granularity;
  absl::StatusOr<VmmArena*> arena =
      p_.vmm->chunks().CreateArena(bytes, request.stream, request.small);
  if (!arena.ok()) return arena.status();
  Segment* segment = AdoptSegment((*arena)->base(), bytes, request);
  segment->arena = *arena;
  segment->single_use = true;
  Block* block = segment->head;
  p_.heap->RemoveFreeBlock(block);
  if (absl::Status s = p_.backing->AcquirePages(block); !s.ok()) {
    RetireRange(block);
    return s;
  }
  return p_.host->MarkAllocated(block, request);
}

void OomRungs::RetireRange(Block* block) {
  block->state = BlockState::kFree;
  block->stream_uses.clear();
  block->pool_id = kRetiredRangesPool;
  block->segment->pool_id = kRetiredRangesPool;
  p_.heap->AddFreeBlock(block);
  // Retried at the next free when a capture forbids it now.
  if (!p_.graph_pools->capture_under_way()) p_.vmm->chunks().UnmapFreePages().IgnoreError();
  p_.vmm->SettleStats();
}

Segment* OomRungs::AdoptSegment(DevicePtr base, std::size_t size, const GrowthRequest& request) {
  Segment* segment = p_.heap->Adopt(base, size, request.small, request.stream, request.pool);
  p_.ledger->CountSegmentAdopted(*segment);
  p_.host->Record(TraceAction::kSegmentAlloc, base, size, request.stream);
  p_.heap->AddFreeBlock(segment->head);
  return segment;
}

void OomRungs::DiscardNewSegment(Segment* segment) {
  if (!p_.vmm->chunks().DiscardNewestArena(segment->arena).ok()) return;  // kept, still usable
  DetachSegment(segment);
  delete segment;
}

std::vector<Segment*> OomRungs::DetachReleasableSegments(std::size_t bytes_wanted) {
  p_.host->FlushReuseCache();
  std::vector<Segment*> detached = p_.heap->OldestWhollyFreeSegments(
      bytes_wanted,
      [&](const Segment& segment) { return p_.graph_pools->Releasable(segment.pool_id); });
  for (Segment* segment : detached) DetachSegment(segment);
  return detached;
}

void OomRungs::DetachSegment(Segment* segment) {
  p_.heap->Unlink(segment);
  p_.backing->Detached(*segment);
  p_.host->Record(TraceAction::kSegmentFree, segment->base, segment->size, segment->stream);
  p_.heap->ForgetSegmentBlocks(segment);
}

void OomRungs::ReclaimReleasedPoolSegments() {
  p_.host->FlushReuseCache();
  p_.graph_pools->RejoinSharedPool(*p_.heap, [&](Segment* segment) {
    p_.vmm->ReleaseRangeOrDefer(segment->arena, segment->base, segment->size, Streams());
  });
  p_.ledger->SettleVmmSplitStats();
}

absl::StatusOr<std::vector<Segment*>> OomRungs::ReleaseAboveSoftBudget(std::size_t growth) {
  if (p_.vmm != nullptr) {
    const std::size_t excess = p_.limits->SoftExcess(p_.backing->HeldBytes(), growth);
    if (excess == 0) return std::vector<Segment*>();
    absl::StatusOr<std::size_t> trimmed = p_.vmm->Trim(excess);
    if (!trimmed.ok()) return trimmed.status();
    if (*trimmed > 0) ++p_.stats->num_cache_releases;
    return std::vector<Segment*>();
  }
  // (bytes still being released do not count here: they are on their way out)
  const std::size_t excess =
      p_.limits->SoftExcess(p_.backing->HeldBytes() + p_.limits->growing_bytes(), growth);
  if (excess == 0) return std::vector<Segment*>();
  std::vector<Segment*> released = DetachReleasableSegments(excess);
  if (!released.empty()) ++p_.stats->num_cache_releases;
  return released;
}

std::vector<Segment*> OomRungs::ReleaseCachedAbove(std::size_t cap) {
  // Virtual memory trims chunks now; segments are detached here and freed by the facade.
  const std::size_t before = p_.backing->HeldBytes();
  if (p_.vmm != nullptr) {
    if (before > cap) {
      p_.vmm->Trim(before - cap).IgnoreError();
    } else {
      p_.vmm->SettleStats();
    }
    return {};
  }
  if (before <= cap) return {};
  return DetachReleasableSegments(before - cap);
}

// Free pages whose last use may still be running cannot give their chunks; once the device is
// synchronized they can.
CacheRelease OomRungs::ReleaseCached() {
  CacheRelease release;
  if (p_.vmm != nullptr) {
    p_.backing->FlushDeferredReleases(Streams());
    release.synchronize = p_.vmm->MustWaitToTrim() || !p_.graph_pools->unsynced_pools().empty();
    if (!release.synchronize) return release;
    ++p_.stats->num_sync_all_streams;
    release.synced_through = p_.frees->newest_order();
    return release;
  }
  release.detached = DetachReleasableSegments(SIZE_MAX);
  if (!release.detached.empty()) ++p_.stats->num_cache_releases;
  return release;
}

void OomRungs::Synchronized(std::uint64_t synced_through) {
  p_.graph_pools->MarkSynchronized(synced_through);
  ReclaimReleasedPoolSegments();
}

CacheRelease OomRungs::BeginPoolRelease(PoolId pool) {
  CacheRelease release;
  if (p_.vmm == nullptr) {
    release.detached = DetachReleasableSegments(SIZE_MAX);
    return release;
  }
  p_.graph_pools->AwaitSynchronization(pool, p_.frees->TakeOrder());
  release.synchronize = !p_.graph_pools->capture_under_way();
  release.synced_through = p_.frees->newest_order();
  if (release.synchronize) ++p_.stats->num_sync_all_streams;
  return release;
}

CacheRelease OomRungs::BeginEmptyCache() {
  CacheRelease release;
  if (p_.vmm == nullptr) {
    release.detached = DetachReleasableSegments(SIZE_MAX);
    return release;
  }
  release.finish = true;
  p_.backing->FlushDeferredReleases(Streams());
  release.synchronize = (p_.vmm->MustWaitToTrim() || !p_.graph_pools->unsynced_pools().empty()) &&
                        !p_.graph_pools->capture_under_way();
  if (release.synchronize) ++p_.stats->num_sync_all_streams;
  release.synced_through = p_.frees->newest_order();
  return release;
}

// Every free page whose last use has completed gives its chunk back to the device; the address
// ranges stay reserved.
absl::Status OomRungs::FinishEmptyCache(const CacheRelease& release) {
  if (release.synchronize) p_.graph_pools->MarkSynchronized(release.synced_through);
  ReclaimReleasedPoolSegments();
  p_.backing->FlushDeferredReleases(Streams());
  p_.vmm->chunks().SetEventQueriesAllowed(!p_.graph_pools->capture_under_way());
  return p_.vmm->Trim(SIZE_MAX).status();
}

void OomRungs::GatherOomFacts(OomFacts* facts) const {
  facts->allocated_bytes = static_cast<std::size_t>(p_.stats->allocated_bytes.all().current);
  facts->reserved_bytes = static_cast<std::size_t>(p_.stats->reserved_bytes.all().current);
  const CachedFree cached = p_.backing->FreeMemory();
  facts->cached_free_bytes = cached.bytes;
  facts->largest_free_block_bytes = cached.largest_block;
  facts->pending_free_bytes = p_.frees->pending_bytes();
  facts->budget_bytes = p_.limits->budget();
}

OomRungs::OutOfMemoryOutcome OomRungs::OutOfMemory(OomFacts facts) {
  GatherOomFacts(&facts);
  OutOfMemoryOutcome outcome{.report = BuildOomReport(facts), .observers = oom_observers_};
  ++p_.stats->num_ooms;
  p_.host->Record(TraceAction::kOom, 0, facts.requested_bytes, facts.stream);
  last_oom_ = outcome.report;
  return outcome;
}

StreamsNow OomRungs::Streams() const {
  return StreamsNow{.captures_active = p_.graph_pools->capture_under_way(),
                    .dead_streams = &p_.frees->destroyed_streams()};
}

}  // namespace vramcache
