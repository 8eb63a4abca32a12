// The statistics ledger: the named transitions that change the allocator's block statistics
// (a request served, a user's free, a block becoming active or inactive, a split block entering
// or leaving the free memory, virtual-memory pages settled, a segment adopted or released,
// reserved memory following the chunk pool), so that each counter changes in one place. It
// writes the allocator's DeviceStats; event and retry counters are still updated where those
// events happen. Not thread-safe: called with the allocator's lock held.
//
// The per-block transitions are defined here, inline: every allocation and free makes several
// of them (the fast path: CountUserAllocation, CountActive and SettleVmmSplitStats at a reuse,
// their counterparts at a free), and as calls into another file they cost the fast path and the
// replays 10-20% more instructions than the same updates inline did before the ledger existed
// (callgrind, docs/benchmarks.md "#14 host cost").
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>

#include "absl/base/attributes.h"
#include "allocator/core/block.h"
#include "allocator/core/stats.h"
#include "allocator/core/vmm_arena.h"

namespace vramcache {

// Virtual-memory mode: pages of its arena that `block` covers entirely (none for a block inside
// one page).
inline std::int64_t WholePagesOf(const Block& block, std::size_t granularity) {
  // A block smaller than a page covers none whole: no division (most blocks, the whole fast path).
  if (block.size < granularity) return 0;
  const std::size_t offset = block.addr - block.segment->arena->base();
  const std::size_t first = (offset + granularity - 1) / granularity;
  const std::size_t end = (offset + block.size) / granularity;
  return end > first ? static_cast<std::int64_t>(end - first) : 0;
}

// What the per-thread fronts (thread_fronts.h) hold back from the allocator's statistics. A
// front reuses its blocks without the allocator's lock, so the allocator's counters miss the
// fronts' changes, and the fronts never look at a peak: each front reuse only gives back what
// the same block's front free took, and the split statistics that rise at such a free rise by
// no more than the amounts reserved here (per pool, large [0] and small [1]), which the fronts
// took from under the peaks when their blocks entered them. So while fronts hold blocks, the
// allocator's own increase may pass a peak unseen only when it takes its counter, plus what the
// fronts reserve of it, above that peak: then the fronts are folded in and stopped
// (FoldAndFreeze), and the peak is exact again (docs/design.md, "Per-thread fronts").
class FrontReserves {
 public:
  // The fronts' changes added into the allocator's statistics and the fronts stopped (every
  // request then goes to the allocator) until they are flushed; called with the allocator's
  // lock held, never with a front's.
  virtual void FoldAndFreeze() = 0;
  std::int64_t split_bytes[2] = {0, 0};  // reserved of inactive_split_bytes
  std::int64_t split_count[2] = {0, 0};  // reserved of inactive_split

 protected:
  ~FrontReserves() = default;
};

class StatsLedger {
 public:
  // `stats` must outlive the ledger. Blocks of at least `max_split_size` bytes are oversize.
  StatsLedger(DeviceStats* stats, std::size_t max_split_size)
      : stats_(stats), max_split_size_(max_split_size) {}

  // Virtual-memory mode: the split statistics count `vmm`'s pages instead of split blocks.
  // Called once, before any transition.
  void UseVirtualMemory(const ChunkPool* vmm) {
    vmm_ = vmm;
    granularity_ = vmm->granularity();
  }

  // Blocks of at least `bytes` are oversize from now on (max_split_size changed at run time);
  // blocks already counted stay counted until their free.
  void SetMaxSplitSize(std::size_t bytes) { max_split_size_ = bytes; }
  std::size_t max_split_size() const { return max_split_size_; }
  const ChunkPool* vmm() const { return vmm_; }  // null in segment mode

  // While fronts hold blocks: every increase of a counter they change checks the peak against
  // `reserves` first (FrontReserves). Null: no front holds anything, increases are plain.
  void GuardPeaks(FrontReserves* reserves) { guard_ = reserves; }
  bool guarding_peaks() const { return guard_ != nullptr; }
  // A block handed out (CountUserAllocation, then CountActive or CountActiveKeepingPages with
  // +1): every peak those raise, checked at once, so that the hot path has one call site.
  ABSL_ATTRIBUTE_COLD ABSL_ATTRIBUTE_NOINLINE void GuardAllocation(const Block& block,
                                                                   std::size_t requested);
  // A block freed whole into a cache that keeps its pages (CountActiveKeepingPages(-1), then
  // CountSplitBlock(+1)): the split statistics' peaks, checked at once.
  ABSL_ATTRIBUTE_COLD ABSL_ATTRIBUTE_NOINLINE void GuardCaching(const Block& block);

  // Folding a front in (FrontReserves::FoldAndFreeze): the whole pages its blocks' moves
  // counted active, which this ledger's virtual-memory split statistics follow, are added here
  // and zeroed in `front`, the front's ledger.
  void TakePagesOf(StatsLedger& front) {
    for (int i = 0; i < 2; ++i) {
      active_whole_pages_[i] += front.active_whole_pages_[i];
      front.active_whole_pages_[i] = 0;
    }
  }

  // What the split statistics rise by when `block` is freed whole into a cache that keeps its
  // pages (CountActiveKeepingPages(-1) and CountSplitBlock(+1)): {bytes, count}.
  std::pair<std::int64_t, std::int64_t> SplitRiseWhenCached(const Block& block) const {
    if (vmm_ != nullptr) {
      return {static_cast<std::int64_t>(block.size), WholePagesOf(block, granularity_)};
    }
    if (!block.is_split()) return {0, 0};
    return {static_cast<std::int64_t>(block.size), 1};
  }

  // `block` serves a user's request of `requested` bytes; it remembers whether it was counted
  // oversize.
  // kCheckPeaks false: the caller checked the peaks already (GuardAllocation).
  template <bool kCheckPeaks = true>
  void CountUserAllocation(Block& block, std::size_t requested);
  // The user freed `block` (or an allocation was undone, or shutdown forgot it). Whether it
  // stays active until its free completes is CountActive's business.
  void CountUserFree(const Block& block);

  // `block` becomes active (+1: served) or stops being active (-1: its free completed, or
  // shutdown). In virtual-memory mode the pages it covers whole are counted too, for the split
  // statistics.
  template <bool kCheckPeaks = true>
  void CountActive(const Block& block, int direction);
  // CountActive and SettleVmmSplitStats(small) for a block entering (-1) or leaving (+1) the
  // reuse cache, whose pages keep their uses meanwhile: only active bytes and whole pages move,
  // so the split statistics (settled after the previous step) move by exactly as much the other
  // way. The same values and peaks as the recount, at a fraction of its cost (the fast path
  // makes one at each allocation and free).
  template <bool kCheckPeaks = true>
  void CountActiveKeepingPages(const Block& block, int direction);

  // Segment mode: a free, cached or parked block of a split segment is `inactive_split` (memory
  // that stays reserved while its segment has a block in use); +1 when it becomes one, -1 when
  // it stops (before its size or neighbours change). Virtual-memory mode counts pages instead
  // (SettleVmmSplitStats).
  template <bool kCheckPeaks = true>
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
  void AdjustTo(PoolStat& stat, bool small, std::int64_t target, const std::int64_t* reserved);

  // While fronts hold blocks (GuardPeaks), each transition that raises counters first checks
  // them all, out of line: one predictable branch on the hot path when no front holds any.
  // Each checks every counter its transition raises, with the amount it raises it by, and folds
  // the fronts in (FoldAndFreeze, which clears guard_) when one would pass its peak counting
  // what the fronts reserve of it; the plain increases that follow are then exact.
  ABSL_ATTRIBUTE_COLD ABSL_ATTRIBUTE_NOINLINE void GuardUserAllocation(const Block& block,
                                                                       std::size_t requested);
  ABSL_ATTRIBUTE_COLD ABSL_ATTRIBUTE_NOINLINE void GuardActive(const Block& block);
  ABSL_ATTRIBUTE_COLD ABSL_ATTRIBUTE_NOINLINE void GuardSplitRise(const Block& block,
                                                                  std::int64_t bytes,
                                                                  std::int64_t count);
  // Whether raising `stat` by `amount` in `small`'s pool would pass its peak (in the pool or in
  // `all`), `reserved` (per pool, null: none) counted.
  static bool PassesPeak(const PoolStat& stat, bool small, std::int64_t amount,
                         const std::int64_t* reserved);
  const std::int64_t* split_bytes_reserved() const {
    return guard_ != nullptr ? guard_->split_bytes : nullptr;
  }
  const std::int64_t* split_count_reserved() const {
    return guard_ != nullptr ? guard_->split_count : nullptr;
  }

  DeviceStats* const stats_;
  FrontReserves* guard_ = nullptr;
  std::size_t max_split_size_;
  const ChunkPool* vmm_ = nullptr;  // null in segment mode
  std::size_t granularity_ = 0;     // vmm_'s page size, kept here for the hot path
  // Virtual-memory mode: pages that active blocks cover whole, large pool [0] and small [1].
  std::int64_t active_whole_pages_[2] = {0, 0};
  // Virtual-memory mode: the chunk pool's counters already in the statistics.
  std::uint64_t seen_chunks_created_ = 0;
  std::uint64_t seen_chunks_released_ = 0;
  std::uint64_t seen_maps_ = 0;
  std::uint64_t seen_unmaps_ = 0;
  std::uint64_t seen_stitches_ = 0;
};

template <bool kCheckPeaks>
inline void StatsLedger::CountUserAllocation(Block& block, std::size_t requested) {
  const bool small = block.segment->small;
  if (kCheckPeaks && guard_ != nullptr) [[unlikely]]
    GuardUserAllocation(block, requested);
  stats_->allocation.Increase(small, 1);
  stats_->allocated_bytes.Increase(small, static_cast<std::int64_t>(block.size));
  stats_->requested_bytes.Increase(small, static_cast<std::int64_t>(requested));
  block.counted_oversize = block.size >= max_split_size_;
  if (block.counted_oversize) stats_->oversize_allocations.Increase(1);
}

// Forced inline: GCC keeps it out of line in Free (~10 instructions a call).
ABSL_ATTRIBUTE_ALWAYS_INLINE inline void StatsLedger::CountUserFree(const Block& block) {
  const bool small = block.segment->small;
  stats_->allocation.Decrease(small, 1);
  stats_->allocated_bytes.Decrease(small, static_cast<std::int64_t>(block.size));
  stats_->requested_bytes.Decrease(small, static_cast<std::int64_t>(block.requested));
  if (block.counted_oversize) stats_->oversize_allocations.Decrease(1);
}

template <bool kCheckPeaks>
ABSL_ATTRIBUTE_ALWAYS_INLINE inline void StatsLedger::CountActive(const Block& block,
                                                                  int direction) {
  const bool small = block.segment->small;
  const auto bytes = static_cast<std::int64_t>(block.size);
  if (direction > 0) {
    if (kCheckPeaks && guard_ != nullptr) [[unlikely]]
      GuardActive(block);
    stats_->active.Increase(small, 1);
    stats_->active_bytes.Increase(small, bytes);
  } else {
    stats_->active.Decrease(small, 1);
    stats_->active_bytes.Decrease(small, bytes);
  }
  if (block.segment->arena != nullptr) {
    active_whole_pages_[small ? 1 : 0] += direction * WholePagesOf(block, granularity_);
  }
}

template <bool kCheckPeaks>
ABSL_ATTRIBUTE_ALWAYS_INLINE inline void StatsLedger::CountActiveKeepingPages(const Block& block,
                                                                              int direction) {
  CountActive<kCheckPeaks>(block, direction);
  if (vmm_ == nullptr) return;
  const bool small = block.segment->small;
  const auto bytes = static_cast<std::int64_t>(block.size);
  const std::int64_t whole = WholePagesOf(block, granularity_);
  if (direction > 0) {
    stats_->inactive_split_bytes.Decrease(small, bytes);
    if (whole != 0) stats_->inactive_split.Decrease(small, whole);
  } else {
    if (kCheckPeaks && guard_ != nullptr) [[unlikely]]
      GuardSplitRise(block, bytes, whole);
    stats_->inactive_split_bytes.Increase(small, bytes);
    if (whole != 0) stats_->inactive_split.Increase(small, whole);
  }
}

// Always inline: as a template, GCC 12 kept the unchecked one out of line in Free (3% of a
// segment-mode replay's instructions, callgrind).
template <bool kCheckPeaks>
[[gnu::flatten]] ABSL_ATTRIBUTE_ALWAYS_INLINE inline void StatsLedger::CountSplitBlock(
    const Block& block, int direction) {
  if (vmm_ != nullptr || !block.is_split()) return;
  const bool small = block.segment->small;
  const auto bytes = static_cast<std::int64_t>(block.size);
  if (direction > 0) {
    if (kCheckPeaks && guard_ != nullptr) [[unlikely]]
      GuardSplitRise(block, bytes, 1);
    stats_->inactive_split.Increase(small, 1);
    stats_->inactive_split_bytes.Increase(small, bytes);
  } else {
    stats_->inactive_split.Decrease(small, 1);
    stats_->inactive_split_bytes.Decrease(small, bytes);
  }
}

inline void StatsLedger::SettleVmmSplitStats(bool small) {
  if (vmm_ == nullptr) return;
  const int p = small ? 1 : 2;
  const auto live_pages = static_cast<std::int64_t>(vmm_->live_pages(small));
  const std::int64_t bytes = live_pages * static_cast<std::int64_t>(granularity_) -
                             stats_->active_bytes.by_pool[p].current;
  AdjustTo(stats_->inactive_split_bytes, small, bytes, split_bytes_reserved());
  // Read only now: folding the fronts in (FrontReserves), which the adjustment above may do,
  // adds the whole pages their moves counted active. (A target read before a fold, with the
  // value the adjustment starts from read after it, would be off by the fronts' count.)
  const std::int64_t count = live_pages - active_whole_pages_[small ? 1 : 0];
  AdjustTo(stats_->inactive_split, small, count, split_count_reserved());
}

inline void StatsLedger::AdjustTo(PoolStat& stat, bool small, std::int64_t target,
                                  const std::int64_t* reserved) {
  const std::int64_t current = stat.by_pool[small ? 1 : 2].current;
  if (target > current) {
    if (guard_ != nullptr && PassesPeak(stat, small, target - current, reserved)) [[unlikely]] {
      guard_->FoldAndFreeze();
    }
    stat.Increase(small, target - current);
  }
  if (target < current) stat.Decrease(small, current - target);
}

}  // namespace vramcache
