// The statistics ledger's transitions (stats_ledger.h).
#include "allocator/core/stats_ledger.h"

#include <utility>

#include "allocator/core/vmm_arena.h"

namespace vramcache {

std::int64_t WholePagesOf(const Block& block, std::size_t granularity) {
  const std::size_t offset = block.addr - block.segment->arena->base();
  const std::size_t first = (offset + granularity - 1) / granularity;
  const std::size_t end = (offset + block.size) / granularity;
  return end > first ? static_cast<std::int64_t>(end - first) : 0;
}

void StatsLedger::CountUserAllocation(Block& block, std::size_t requested) {
  const bool small = block.segment->small;
  stats_->allocation.Increase(small, 1);
  stats_->allocated_bytes.Increase(small, static_cast<std::int64_t>(block.size));
  stats_->requested_bytes.Increase(small, static_cast<std::int64_t>(requested));
  block.counted_oversize = block.size >= max_split_size_;
  if (block.counted_oversize) stats_->oversize_allocations.Increase(1);
}

void StatsLedger::CountUserFree(const Block& block) {
  const bool small = block.segment->small;
  stats_->allocation.Decrease(small, 1);
  stats_->allocated_bytes.Decrease(small, static_cast<std::int64_t>(block.size));
  stats_->requested_bytes.Decrease(small, static_cast<std::int64_t>(block.requested));
  if (block.counted_oversize) stats_->oversize_allocations.Decrease(1);
}

void StatsLedger::CountActive(const Block& block, int direction) {
  const bool small = block.segment->small;
  const auto bytes = static_cast<std::int64_t>(block.size);
  if (direction > 0) {
    stats_->active.Increase(small, 1);
    stats_->active_bytes.Increase(small, bytes);
  } else {
    stats_->active.Decrease(small, 1);
    stats_->active_bytes.Decrease(small, bytes);
  }
  if (block.segment->arena != nullptr) {
    active_whole_pages_[small ? 1 : 0] += direction * WholePagesOf(block, vmm_->granularity());
  }
}

void StatsLedger::CountSplitBlock(const Block& block, int direction) {
  if (vmm_ != nullptr || !block.is_split()) return;
  const bool small = block.segment->small;
  const auto bytes = static_cast<std::int64_t>(block.size);
  if (direction > 0) {
    stats_->inactive_split.Increase(small, 1);
    stats_->inactive_split_bytes.Increase(small, bytes);
  } else {
    stats_->inactive_split.Decrease(small, 1);
    stats_->inactive_split_bytes.Decrease(small, bytes);
  }
}

void StatsLedger::SettleVmmSplitStats() {
  SettleVmmSplitStats(true);
  SettleVmmSplitStats(false);
}

void StatsLedger::SettleVmmSplitStats(bool small) {
  if (vmm_ == nullptr) return;
  const int p = small ? 1 : 2;
  const auto live_pages = static_cast<std::int64_t>(vmm_->live_pages(small));
  const std::int64_t bytes = live_pages * static_cast<std::int64_t>(vmm_->granularity()) -
                             stats_->active_bytes.by_pool[p].current;
  const std::int64_t count = live_pages - active_whole_pages_[small ? 1 : 0];
  AdjustTo(stats_->inactive_split_bytes, small, bytes);
  AdjustTo(stats_->inactive_split, small, count);
}

void StatsLedger::CountSegmentAdopted(Segment& segment) {
  const bool small = segment.small;
  stats_->segment.Increase(small, 1);
  segment.counted_oversize = segment.size >= max_split_size_;
  if (segment.counted_oversize) stats_->oversize_segments.Increase(1);
  if (vmm_ == nullptr) {  // virtual memory counts chunks instead (SettleVmmReserved)
    stats_->reserved_bytes.Increase(small, static_cast<std::int64_t>(segment.size));
    ++stats_->num_device_alloc;
  }
}

void StatsLedger::CountSegmentReleased(const Segment& segment) {
  const bool small = segment.small;
  stats_->segment.Decrease(small, 1);
  if (segment.counted_oversize) stats_->oversize_segments.Decrease(1);
  if (vmm_ == nullptr) {
    stats_->reserved_bytes.Decrease(small, static_cast<std::int64_t>(segment.size));
  }
}

void StatsLedger::SettleVmmReserved() {
  const ChunkPoolCounters& now = vmm_->counters();
  auto delta = [](std::uint64_t after, std::uint64_t before) {
    return static_cast<std::int64_t>(after - before);
  };
  stats_->num_device_alloc += delta(now.chunks_created, seen_chunks_created_);
  stats_->num_device_free += delta(now.chunks_released, seen_chunks_released_);
  stats_->num_map_calls += delta(now.maps, seen_maps_);
  stats_->num_unmap_calls += delta(now.unmaps, seen_unmaps_);
  stats_->num_stitches += delta(now.stitches, seen_stitches_);
  seen_chunks_created_ = now.chunks_created;
  seen_chunks_released_ = now.chunks_released;
  seen_maps_ = now.maps;
  seen_unmaps_ = now.unmaps;
  seen_stitches_ = now.stitches;
  const auto small_held = static_cast<std::int64_t>(vmm_->small_mapped_bytes());
  const auto large_held = static_cast<std::int64_t>(vmm_->held_bytes()) - small_held;
  // Decreases first: a chunk whose holder moved between the pools must not raise the overall
  // peak for an instant.
  const std::pair<bool, std::int64_t> pools[] = {{true, small_held}, {false, large_held}};
  for (const auto& [small, held] : pools) {
    const std::int64_t current = stats_->reserved_bytes.by_pool[small ? 1 : 2].current;
    if (held < current) stats_->reserved_bytes.Decrease(small, current - held);
  }
  for (const auto& [small, held] : pools) {
    const std::int64_t current = stats_->reserved_bytes.by_pool[small ? 1 : 2].current;
    if (held > current) stats_->reserved_bytes.Increase(small, held - current);
  }
}

void StatsLedger::AdjustTo(PoolStat& stat, bool small, std::int64_t target) {
  const std::int64_t current = stat.by_pool[small ? 1 : 2].current;
  if (target > current) stat.Increase(small, target - current);
  if (target < current) stat.Decrease(small, current - target);
}

}  // namespace vramcache
