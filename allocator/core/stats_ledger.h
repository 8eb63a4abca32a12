// The statistics ledger: the named transitions that change the allocator's block statistics
// (a request served, a user's free, a block becoming active or inactive, a split block entering
// or leaving the free memory, virtual-memory pages settled, a segment adopted or released,
// reserved memory following the chunk pool), so that each counter changes in one place. It
// writes the allocator's DeviceStats; event and retry counters are still updated where those
// events happen. Not thread-safe: called with the allocator's lock held.
#pragma once

#include <cstddef>
#include <cstdint>

#include "allocator/core/block.h"
#include "allocator/core/stats.h"

namespace vramcache {

class ChunkPool;

class StatsLedger {
 public:
  // `stats` must outlive the ledger. Blocks of at least `max_split_size` bytes are oversize.
  StatsLedger(DeviceStats* stats, std::size_t max_split_size)
      : stats_(stats), max_split_size_(max_split_size) {}

  // Virtual-memory mode: the split statistics count `vmm`'s pages instead of split blocks.
  // Called once, before any transition.
  void UseVirtualMemory(const ChunkPool* vmm) { vmm_ = vmm; }

  // Blocks of at least `bytes` are oversize from now on (max_split_size changed at run time);
  // blocks already counted stay counted until their free.
  void SetMaxSplitSize(std::size_t bytes) { max_split_size_ = bytes; }

  // `block` serves a user's request of `requested` bytes; it remembers whether it was counted
  // oversize.
  void CountUserAllocation(Block& block, std::size_t requested);
  // The user freed `block` (or an allocation was undone, or shutdown forgot it). Whether it
  // stays active until its free completes is CountActive's business.
  void CountUserFree(const Block& block);

  // `block` becomes active (+1: served) or stops being active (-1: its free completed, or
  // shutdown). In virtual-memory mode the pages it covers whole are counted too, for the split
  // statistics.
  void CountActive(const Block& block, int direction);

  // Segment mode: a free, cached or parked block of a split segment is `inactive_split` (memory
  // that stays reserved while its segment has a block in use); +1 when it becomes one, -1 when
  // it stops (before its size or neighbours change). Virtual-memory mode counts pages instead
  // (SettleVmmSplitStats).
  void CountSplitBlock(const Block& block, int direction);

  // Virtual-memory mode: the split statistics in physical terms, per pool. A page with a live
  // count holds its own chunk, which nothing else can take and empty_cache cannot release;
  // `inactive_split_bytes` is what of those pages no active block covers (G x pages in use -
  // active bytes: the memory stranded by fragmentation, the summary's "non-releasable"), and
  // `inactive_split` the pages in use that are not wholly inside one active block. Free address
  // space holds no memory and counts nowhere. Both follow two counts that one step changes at
  // different moments (pages when a block's backing is acquired or released, active bytes when
  // it is served or its free completes), so they are settled at the end of each such step,
  // never in between: every value a reader can see, and so every peak, is a true one. Nothing
  // to do in segment mode.
  void SettleVmmSplitStats();
  // The same for one pool, after a step that changed only that pool's blocks and pages (the
  // hot path: one block served or freed).
  void SettleVmmSplitStats(bool small);

  // `segment` joined the heap (a device allocation, or an address range in virtual-memory
  // mode); it remembers whether it was counted oversize. Segment mode also reserves its bytes
  // and counts the device call here; virtual memory reserves chunks, not ranges
  // (SettleVmmReserved).
  void CountSegmentAdopted(Segment& segment);
  // `segment` left the heap (detached for release, a new range discarded, or shutdown): undoes
  // what its adoption counted. Segment mode: its bytes stop being reserved now, although the
  // device call that frees them comes later, outside the lock (the budget counts them as
  // releasing until then).
  void CountSegmentReleased(const Segment& segment);
  // Segment mode: `calls` device frees of released segments completed.
  void CountDeviceFrees(std::int64_t calls) { stats_->num_device_free += calls; }

  // Virtual-memory mode: copies the chunk pool's device-call counters since the last call and
  // its held bytes (reserved memory, per pool) into the statistics.
  void SettleVmmReserved();

 private:
  // Moves `stat`'s current value in `small`'s pool (and `all`) to `target`.
  static void AdjustTo(PoolStat& stat, bool small, std::int64_t target);

  DeviceStats* const stats_;
  std::size_t max_split_size_;
  const ChunkPool* vmm_ = nullptr;  // null in segment mode
  // Virtual-memory mode: pages that active blocks cover whole, large pool [0] and small [1].
  std::int64_t active_whole_pages_[2] = {0, 0};
  // Virtual-memory mode: the chunk pool's counters already in the statistics.
  std::uint64_t seen_chunks_created_ = 0;
  std::uint64_t seen_chunks_released_ = 0;
  std::uint64_t seen_maps_ = 0;
  std::uint64_t seen_unmaps_ = 0;
  std::uint64_t seen_stitches_ = 0;
};

// Virtual-memory mode: pages of its arena that `block` covers entirely (none for a block inside
// one page).
std::int64_t WholePagesOf(const Block& block, std::size_t granularity);

}  // namespace vramcache
