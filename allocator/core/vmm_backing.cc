// The virtual-memory backing (vmm_backing.h).
#include "allocator/core/vmm_backing.h"

#include <algorithm>
#include <utility>

#include "allocator/core/caching_allocator.h"
#include "allocator/core/size_classes.h"

namespace vramcache {

VmmBacking::VmmBacking(Device* device, const AllocatorConfig& config, StatsLedger* ledger,
                       std::size_t budget)
    : ledger_(ledger),
      pool_(std::make_unique<ChunkPool>(device, device->Capabilities().granularity)) {
  ledger_->UseVirtualMemory(pool_.get());
  pool_->SetBudget(budget);
  // unmap_on_free: free addresses must fault, so a stitch may not leave an alias behind.
  pool_->SetAliasing(!config.unmap_on_free);
}

CachedFree VmmBacking::FreeMemory() const {
  // Any request can be stitched from free pages and cached chunks alike.
  const std::size_t bytes = pool_->free_mapped_bytes() + pool_->cached_bytes();
  return {bytes, bytes};
}

// The block's pages get chunks (and one more use each). Nothing to do for pinned ranges.
absl::Status VmmBacking::AcquirePages(Block* block) {
  const Segment* segment = block->segment;
  if (segment->arena == nullptr || segment->pinned) return absl::OkStatus();
  const std::size_t live_pages = segment->arena->live_pages();
  absl::Status status = segment->arena->Acquire(block->addr, block->size);
  // An Acquire that brings no page into use maps, creates and steals nothing (its pages only
  // count one more use): nothing to settle then. A failed one may have mapped chunks.
  if (!status.ok() || segment->arena->live_pages() != live_pages) SettleStats();
  if (status.ok()) block->holds_pages = true;
  return status;
}

// The block's uses of its pages end; pages left unused keep their chunks, which the next
// request anywhere may take once the free mark recorded now has completed. During a capture no
// mark may be recorded (it would be captured), so the release waits for its end. A release
// maps, unmaps, creates and releases nothing: no statistic changes.
// The device is asked whether the arena's stream captures (unannounced) only when the release
// records a mark (ChunkPool::Release asks then, MarkRule::kUnlessStreamCaptures): one that leaves
// every page with another live block only counts down, and the last block's release, later on the
// same stream, records the mark that covers this block's work too (asking on every release cost the
// replays 5-6% of their host time). Recording a mark may query an older one for its event
// (ChunkPool::TakeEvent), which relaxes the capture mode around that query itself.
void VmmBacking::ReleasePages(Block* block, const StreamsNow& streams) {
  block->holds_pages = false;
  VmmArena* arena = block->segment->arena;
  if (streams.captures_active ||
      !arena
           ->Release(block->addr, block->size, /*last_use_complete=*/streams.Dead(arena->stream()),
                     VmmArena::MarkRule::kUnlessStreamCaptures)
           .ok()) {
    deferred_.push_back({arena, block->addr, block->size});  // pages stay backed
  }
}

absl::StatusOr<VmmArena*> VmmBacking::ReserveRange(std::size_t rounded, bool small,
                                                   bool private_pool, StreamHandle stream,
                                                   std::size_t max_split_size) {
  const std::size_t granularity = pool_->granularity();
  std::size_t bytes = SizeRounder::SegmentSizeFor(rounded);
  // A private pool pins its whole range, so it gets no more than segment mode would.
  if (!small && !private_pool && kLargeRangeBytes < max_split_size) {
    bytes = std::max(bytes, kLargeRangeBytes);
  }
  bytes = (bytes + granularity - 1) / granularity * granularity;
  absl::StatusOr<VmmArena*> arena = pool_->CreateArena(bytes, stream, small);
  if (!arena.ok() || !private_pool) return arena;
  absl::Status pinned = (*arena)->Acquire((*arena)->base(), bytes);
  SettleStats();
  if (!pinned.ok()) {
    pool_->DiscardNewestArena(*arena).IgnoreError();  // address space only: kept on failure
    return pinned;
  }
  return arena;
}

void VmmBacking::ReleaseRangeOrDefer(VmmArena* arena, DevicePtr addr, std::size_t bytes,
                                     const StreamsNow& streams) {
  if (streams.captures_active || !ReleaseRange(arena, addr, bytes, streams).ok()) {
    deferred_.push_back({arena, addr, bytes});
  }
}

void VmmBacking::FlushDeferredReleases(const StreamsNow& streams) {
  if (deferred_.empty() || streams.captures_active) return;
  std::vector<DeferredRelease> retry;
  retry.swap(deferred_);
  for (const DeferredRelease& r : retry) {
    if (StreamCapturing(r.arena->stream(), streams) ||
        !ReleaseRange(r.arena, r.addr, r.bytes, streams).ok()) {
      deferred_.push_back(r);
    }
  }
  ledger_->SettleVmmSplitStats();
}

void VmmBacking::ReleaseDeferredOf(StreamHandle stream) {
  if (deferred_.empty()) return;
  std::vector<DeferredRelease> kept;
  for (const DeferredRelease& r : deferred_) {
    if (r.arena->stream() != stream ||
        !r.arena->Release(r.addr, r.bytes, /*last_use_complete=*/false).ok()) {
      kept.push_back(r);
    }
  }
  deferred_.swap(kept);
  ledger_->SettleVmmSplitStats();
}

absl::StatusOr<std::size_t> VmmBacking::Trim(std::size_t bytes) {
  absl::StatusOr<std::size_t> trimmed = pool_->Trim(bytes);
  SettleStats();
  return trimmed;
}

void VmmBacking::AppendSnapshot(const Segment& segment, std::vector<SegmentInfo>* out) const {
  const VmmArena& arena = *segment.arena;
  const std::size_t granularity = pool_->granularity();
  auto holds_chunk = [&](std::size_t page) {
    const VmmArena::PageView view = arena.page(page);
    return view.mapped && !view.alias;
  };
  const Block* block = segment.head;
  for (std::size_t page = 0; page < arena.page_count();) {
    if (!holds_chunk(page)) {
      ++page;
      continue;
    }
    std::size_t end = page + 1;
    while (end < arena.page_count() && holds_chunk(end)) ++end;
    const DevicePtr run_begin = arena.base() + page * granularity;
    const DevicePtr run_end = arena.base() + end * granularity;
    SegmentInfo info{run_begin, run_end - run_begin, segment.stream, segment.small, {}};
    while (block != nullptr && block->addr + block->size <= run_begin) block = block->next;
    for (const Block* b = block; b != nullptr && b->addr < run_end; b = b->next) {
      const DevicePtr from = std::max(b->addr, run_begin);
      const DevicePtr to = std::min(b->addr + b->size, run_end);
      info.blocks.push_back({from, to - from, b->requested, b->state, b->pool_id});
    }
    out->push_back(std::move(info));
    page = end;
  }
}

bool VmmBacking::StreamCapturing(StreamHandle stream, const StreamsNow& streams) {
  if (streams.Dead(stream)) return false;
  return pool_->StreamCaptures(stream);
}

absl::Status VmmBacking::ReleaseRange(VmmArena* arena, DevicePtr addr, std::size_t bytes,
                                      const StreamsNow& streams) {
  return arena->Release(addr, bytes, /*last_use_complete=*/streams.Dead(arena->stream()));
}

absl::Status VmmBacking::ReleaseAllAtShutdown(std::vector<Segment*>* released) {
  absl::Status status = pool_->ReleaseAll();
  SettleStats();
  ledger_->SettleVmmSplitStats();
  for (Segment* segment : *released) delete segment;
  released->clear();
  return status;
}

}  // namespace vramcache
