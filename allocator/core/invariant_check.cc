// The invariant recount (invariant_check.h): every check walks the blocks, never the counters
// it verifies, so a counter updated in the wrong place cannot hide itself.
#include "allocator/core/invariant_check.h"

#include <algorithm>

#include "absl/status/statusor.h"
#include "absl/strings/str_format.h"
#include "allocator/core/size_classes.h"
#include "allocator/core/vmm_arena.h"

namespace vramcache {

namespace {

// Virtual memory: every block in use (allocated, cached or pending) has its pages backed,
// and holds them itself unless its range is pinned; free blocks hold none.
absl::Status CheckBacking(const Segment& segment) {
  for (const Block* b = segment.head; b != nullptr; b = b->next) {
    const bool in_use = b->state == BlockState::kAllocated || b->state == BlockState::kCached;
    if ((in_use && !segment.pinned && !b->holds_pages) ||
        (b->state == BlockState::kFree && b->holds_pages)) {
      return absl::InternalError(absl::StrFormat("block %#x (state %d) %s its pages", b->addr,
                                                 static_cast<int>(b->state),
                                                 b->holds_pages ? "holds" : "does not hold"));
    }
    if (b->holds_pages || (segment.pinned && b->state != BlockState::kFree)) {
      absl::StatusOr<std::size_t> unbacked = segment.arena->UnbackedPages(b->addr, b->size);
      if (!unbacked.ok()) return unbacked.status();
      if (*unbacked != 0) {
        return absl::InternalError(absl::StrFormat(
            "block %#x in use but %d of its pages have no chunk", b->addr, *unbacked));
      }
    }
  }
  return absl::OkStatus();
}

// Virtual-memory mode's large segments: the first-fit index lists exactly the free blocks,
// the segment is listed by its rank, and the bound on their largest size holds.
absl::Status CheckFirstFitIndex(const AllocatorStateView& state, const Segment& segment) {
  if (state.vmm == nullptr || segment.small) {
    if (segment.free_by_addr.empty()) return absl::OkStatus();
    return absl::InternalError(
        absl::StrFormat("segment %#x is not searched first fit but indexes blocks", segment.base));
  }
  auto ranked = state.first_fit_segments.find(segment.rank);
  if (ranked == state.first_fit_segments.end() || ranked->second != &segment) {
    return absl::InternalError(
        absl::StrFormat("segment %#x is not listed by its rank %d", segment.base, segment.rank));
  }
  std::size_t free_blocks = 0;
  std::size_t largest = 0;
  for (const Block* b = segment.head; b != nullptr; b = b->next) {
    if (b->state != BlockState::kFree) continue;
    ++free_blocks;
    largest = std::max(largest, b->size);
    if (!segment.free_by_addr.contains(const_cast<Block*>(b))) {
      return absl::InternalError(
          absl::StrFormat("free block %#x is missing from the first-fit index", b->addr));
    }
  }
  // The heap puts a block in its neighbour's place in the index (BlockHeap::ReplaceInPlace),
  // which only the order of the addresses shows wrong.
  const Block* last = nullptr;
  for (const Block* b : segment.free_by_addr) {
    if (last != nullptr && last->addr >= b->addr) {
      return absl::InternalError(
          absl::StrFormat("segment %#x: the first-fit index lists %#x after %#x", segment.base,
                          b->addr, last->addr));
    }
    last = b;
  }
  if (free_blocks != segment.free_by_addr.size() || segment.free_max < largest ||
      (!segment.free_max_stale && segment.free_max != largest)) {
    return absl::InternalError(absl::StrFormat(
        "segment %#x: the first-fit index holds %d blocks (%d free), bound %d%s, largest %d",
        segment.base, segment.free_by_addr.size(), free_blocks, segment.free_max,
        segment.free_max_stale ? " (stale)" : "", largest));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckAllocatorInvariants(const AllocatorStateView& state) {
  DeviceStats expected;
  // Virtual-memory mode, per pool (0 large, 1 small): pages with a live count, counted page by
  // page, and the pages active blocks cover whole.
  std::int64_t pages_in_use[2] = {0, 0};
  std::int64_t whole_pages[2] = {0, 0};
  std::size_t free_blocks = 0;
  std::size_t cached_blocks = 0;
  std::size_t cached_bytes = 0;
  DevicePtr previous_end = 0;
  for (const auto& [base, segment] : state.segments) {
    if (base < previous_end) {
      return absl::InternalError(absl::StrFormat("segment %#x overlaps its predecessor", base));
    }
    previous_end = base + segment->size;
    const bool small = segment->small;
    expected.segment.Increase(small, 1);
    if (state.vmm == nullptr) {
      expected.reserved_bytes.Increase(small, static_cast<std::int64_t>(segment->size));
    } else if (absl::Status s = CheckBacking(*segment); !s.ok()) {
      return s;
    } else if (absl::Status first_fit = CheckFirstFitIndex(state, *segment); !first_fit.ok()) {
      return first_fit;
    } else {
      for (std::size_t i = 0; i < segment->arena->page_count(); ++i) {
        if (segment->arena->page(i).live > 0) ++pages_in_use[small ? 1 : 0];
      }
    }
    DevicePtr cursor = base;
    const Block* prev = nullptr;
    for (const Block* b = segment->head; b != nullptr; prev = b, b = b->next) {
      if (b->addr != cursor || b->prev != prev || b->segment != segment ||
          b->stream != segment->stream || b->size == 0 || b->size % kMinBlockSize != 0) {
        return absl::InternalError(
            absl::StrFormat("segment %#x: block %#x does not tile it", base, b->addr));
      }
      cursor += b->size;
      if (b->state == BlockState::kFree) {
        ++free_blocks;
        if (prev != nullptr && prev->state == BlockState::kFree) {
          return absl::InternalError(absl::StrFormat(
              "blocks %#x and %#x are free but not coalesced", prev->addr, b->addr));
        }
        const FreeBlockSet& set = small ? state.small_free : state.large_free;
        if (!set.contains(const_cast<Block*>(b))) {
          return absl::InternalError(
              absl::StrFormat("free block %#x not in its free set", b->addr));
        }
        if (b->is_split() && state.vmm == nullptr) {
          expected.inactive_split.Increase(small, 1);
          expected.inactive_split_bytes.Increase(small, static_cast<std::int64_t>(b->size));
        }
      } else if (b->state == BlockState::kParked) {
        if (b->is_split() && state.vmm == nullptr) {
          expected.inactive_split.Increase(small, 1);
          expected.inactive_split_bytes.Increase(small, static_cast<std::int64_t>(b->size));
        }
      } else if (b->state == BlockState::kCached) {
        if (auto it = state.allocated_or_cached.find(b->addr);
            it == state.allocated_or_cached.end() || it->second != b) {
          return absl::InternalError(
              absl::StrFormat("cached block %#x missing from the pointer map", b->addr));
        }
        ++cached_blocks;
        cached_bytes += b->size;
        if (b->is_split() && state.vmm == nullptr) {
          expected.inactive_split.Increase(small, 1);
          expected.inactive_split_bytes.Increase(small, static_cast<std::int64_t>(b->size));
        }
      } else {
        expected.active.Increase(small, 1);
        expected.active_bytes.Increase(small, static_cast<std::int64_t>(b->size));
        if (segment->arena != nullptr)
          whole_pages[small ? 1 : 0] += WholePagesOf(*b, state.vmm->granularity());
      }
      if (b->state == BlockState::kAllocated) {
        auto it = state.allocated_or_cached.find(b->addr);
        if (it == state.allocated_or_cached.end() || it->second != b) {
          return absl::InternalError(
              absl::StrFormat("allocated block %#x missing from the live map", b->addr));
        }
        expected.allocation.Increase(small, 1);
        expected.allocated_bytes.Increase(small, static_cast<std::int64_t>(b->size));
        expected.requested_bytes.Increase(small, static_cast<std::int64_t>(b->requested));
      }
    }
    if (cursor != base + segment->size) {
      return absl::InternalError(absl::StrFormat("segment %#x: blocks cover %d of %d bytes", base,
                                                 cursor - base, segment->size));
    }
  }
  if (free_blocks != state.small_free.size() + state.large_free.size()) {
    return absl::InternalError(absl::StrFormat("%d free blocks in segments but %d in free sets",
                                               free_blocks,
                                               state.small_free.size() + state.large_free.size()));
  }
  std::size_t listed_blocks = 0;
  for (const auto& [key, list] : state.reuse_cache.lists()) {
    for (const Block* b = list.head; b != nullptr; b = b->cache_next) {
      if (b->state != BlockState::kCached || b->rounded != key.rounded ||
          b->alloc_stream != key.stream || b->pool_id != key.pool) {
        return absl::InternalError(
            absl::StrFormat("reuse-cache list holds block %#x of another key", b->addr));
      }
      ++listed_blocks;
    }
  }
  if (listed_blocks != cached_blocks || cached_bytes != state.reuse_cache.bytes()) {
    return absl::InternalError(absl::StrFormat(
        "%d cached blocks (%d bytes) in segments but %d in reuse lists (%d bytes counted)",
        cached_blocks, cached_bytes, listed_blocks, state.reuse_cache.bytes()));
  }
  if (state.allocated_or_cached.size() !=
      static_cast<std::size_t>(expected.allocation.all().current) + cached_blocks) {
    return absl::InternalError("live map holds blocks that no segment holds");
  }
  if (state.vmm != nullptr) {
    if (absl::Status s = state.vmm->CheckInvariants(); !s.ok()) return s;
    const auto small_held = static_cast<std::int64_t>(state.vmm->small_mapped_bytes());
    expected.reserved_bytes.Increase(true, small_held);
    expected.reserved_bytes.Increase(
        false, static_cast<std::int64_t>(state.vmm->held_bytes()) - small_held);
    const auto granularity = static_cast<std::int64_t>(state.vmm->granularity());
    for (const bool small : {true, false}) {
      const int i = small ? 1 : 0;
      const int p = small ? 1 : 2;
      expected.inactive_split_bytes.Increase(
          small, pages_in_use[i] * granularity - expected.active_bytes.by_pool[p].current);
      expected.inactive_split.Increase(small, pages_in_use[i] - whole_pages[i]);
    }
  }
  // What the counters mean bounds them, in both modes and every pool: live blocks are active,
  // active blocks lie in reserved memory, and what is stranded is reserved but not allocated.
  for (int p = 0; p < kNumPoolStats; ++p) {
    const std::int64_t allocated = expected.allocated_bytes.by_pool[p].current;
    const std::int64_t active = expected.active_bytes.by_pool[p].current;
    const std::int64_t reserved = expected.reserved_bytes.by_pool[p].current;
    const std::int64_t split = expected.inactive_split_bytes.by_pool[p].current;
    if (!(allocated <= active && active <= reserved && split >= 0 &&
          split <= reserved - allocated)) {
      return absl::InternalError(absl::StrFormat(
          "%s pool: allocated %d, active %d, reserved %d and inactive_split %d bytes break "
          "allocated <= active <= reserved, 0 <= inactive_split <= reserved - allocated",
          kPoolStatNames[p], allocated, active, reserved, split));
    }
  }
#define VRAMCACHE_COMPARE_POOL_STAT(name)                                                    \
  for (int p = 0; p < kNumPoolStats; ++p) {                                                  \
    if (expected.name.by_pool[p].current != state.stats.name.by_pool[p].current) {           \
      return absl::InternalError(absl::StrFormat(                                            \
          "statistic %s.%s.current is %d but the blocks say %d", #name, kPoolStatNames[p],   \
          state.stats.name.by_pool[p].current, expected.name.by_pool[p].current));           \
    }                                                                                        \
    if (state.stats.name.by_pool[p].peak < state.stats.name.by_pool[p].current) {            \
      return absl::InternalError(absl::StrFormat("statistic %s peak below current", #name)); \
    }                                                                                        \
  }
  VRAMCACHE_POOL_STATS(VRAMCACHE_COMPARE_POOL_STAT)
#undef VRAMCACHE_COMPARE_POOL_STAT
  return absl::OkStatus();
}

}  // namespace vramcache
