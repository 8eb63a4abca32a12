// The statistics ledger's transitions (stats_ledger.h); the per-block ones are inline there.
#include "allocator/core/stats_ledger.h"

#include <utility>

namespace vramcache {

bool StatsLedger::PassesPeak(const PoolStat& stat, bool small, std::int64_t amount,
                             const std::int64_t* reserved) {
  const Stat& pool = stat.by_pool[small ? 1 : 2];
  const Stat& all = stat.by_pool[0];
  const std::int64_t reserved_pool = reserved != nullptr ? reserved[small ? 1 : 0] : 0;
  const std::int64_t reserved_all = reserved != nullptr ? reserved[0] + reserved[1] : 0;
  return pool.current + amount + reserved_pool > pool.peak ||
         all.current + amount + reserved_all > all.peak;
}

void StatsLedger::GuardUserAllocation(const Block& block, std::size_t requested) {
  const bool small = block.segment->small;
  const auto size = static_cast<std::int64_t>(block.size);
  const Stat& oversize = stats_->oversize_allocations;
  if (PassesPeak(stats_->allocation, small, 1, nullptr) ||
      PassesPeak(stats_->allocated_bytes, small, size, nullptr) ||
      PassesPeak(stats_->requested_bytes, small, static_cast<std::int64_t>(requested), nullptr) ||
      (block.size >= max_split_size_ && oversize.current + 1 > oversize.peak)) {
    guard_->FoldAndFreeze();
  }
}

void StatsLedger::GuardAllocation(const Block& block, std::size_t requested) {
  GuardUserAllocation(block, requested);
  if (guard_ != nullptr) GuardActive(block);  // the first did not fold the fronts in
}

void StatsLedger::GuardCaching(const Block& block) {
  const auto [bytes, count] = SplitRiseWhenCached(block);
  if (bytes != 0 || count != 0) GuardSplitRise(block, bytes, count);
}

void StatsLedger::GuardActive(const Block& block) {
  const bool small = block.segment->small;
  if (PassesPeak(stats_->active, small, 1, nullptr) ||
      PassesPeak(stats_->active_bytes, small, static_cast<std::int64_t>(block.size), nullptr)) {
    guard_->FoldAndFreeze();
  }
}

void StatsLedger::GuardSplitRise(const Block& block, std::int64_t bytes, std::int64_t count) {
  const bool small = block.segment->small;
  if (PassesPeak(stats_->inactive_split_bytes, small, bytes, guard_->split_bytes) ||
      (count != 0 && PassesPeak(stats_->inactive_split, small, count, guard_->split_count))) {
    guard_->FoldAndFreeze();
  }
}

void StatsLedger::SettleVmmSplitStats() {
  SettleVmmSplitStats(true);
  SettleVmmSplitStats(false);
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

}  // namespace vramcache
