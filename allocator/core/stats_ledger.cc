// The statistics ledger's transitions (stats_ledger.h).
#include "allocator/core/stats_ledger.h"

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

void StatsLedger::AdjustTo(PoolStat& stat, bool small, std::int64_t target) {
  const std::int64_t current = stat.by_pool[small ? 1 : 2].current;
  if (target > current) stat.Increase(small, target - current);
  if (target < current) stat.Decrease(small, current - target);
}

}  // namespace vramcache
