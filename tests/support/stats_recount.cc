// Recounts an allocator's statistics from outside it (see stats_recount.h).
#include "tests/support/stats_recount.h"

#include <algorithm>
#include <cstdint>

#include "absl/strings/str_format.h"

namespace vramcache {
namespace {

constexpr int kAll = 0;

int PoolIndex(bool small) { return small ? 1 : 2; }

bool IsActive(BlockState state) {
  return state == BlockState::kAllocated || state == BlockState::kPendingFree;
}

// Per-pool values {all, small, large}, as the statistics keep them.
struct PoolCounts {
  std::int64_t value[3] = {0, 0, 0};
  void Add(bool small, std::int64_t amount) {
    value[kAll] += amount;
    value[PoolIndex(small)] += amount;
  }
};

class Recount {
 public:
  void Expect(const char* name, const PoolStat& stat, const PoolCounts& counts) {
    static const char* const kPools[] = {"all", "small_pool", "large_pool"};
    for (int p = 0; p < 3; ++p) {
      Expect(absl::StrFormat("%s.%s", name, kPools[p]), stat.by_pool[p].current, counts.value[p]);
      if (stat.by_pool[p].peak < stat.by_pool[p].current) {
        differences_.push_back(absl::StrFormat("%s.%s: peak %d below current %d", name, kPools[p],
                                               stat.by_pool[p].peak, stat.by_pool[p].current));
      }
    }
  }
  void Expect(const std::string& name, std::int64_t reported, std::int64_t recounted) {
    if (reported != recounted) {
      differences_.push_back(
          absl::StrFormat("%s is %d but recounts to %d", name, reported, recounted));
    }
  }
  std::vector<std::string> Take() { return std::move(differences_); }

 private:
  std::vector<std::string> differences_;
};

}  // namespace

std::vector<std::string> RecountDifferences(const CachingAllocator& allocator,
                                            const SimDevice& device,
                                            const std::vector<RecountedAllocation>& live,
                                            RecountScope scope) {
  const DeviceStats stats = allocator.GetStats();
  const std::vector<SegmentInfo> snapshot = allocator.Snapshot();
  const SimCounters device_counts = device.Counters();
  const bool vmm = allocator.config().vmm == VmmMode::kOn;
  const std::size_t max_split = allocator.config().max_split_size;
  Recount recount;

  // From the caller's list: what is allocated, and what was asked for.
  std::int64_t live_requested = 0;
  std::int64_t live_block_bytes = 0;
  std::int64_t live_oversize = 0;
  for (const RecountedAllocation& allocation : live) {
    live_requested += static_cast<std::int64_t>(allocation.requested);
    absl::StatusOr<std::size_t> size = allocator.AllocationSize(allocation.ptr);
    if (!size.ok())
      return {absl::StrFormat("live allocation %p unknown: %s", allocation.ptr,
                              size.status().ToString())};
    live_block_bytes += static_cast<std::int64_t>(*size);
    if (*size >= max_split) ++live_oversize;
  }
  recount.Expect("allocation.all", stats.allocation.all().current,
                 static_cast<std::int64_t>(live.size()));
  recount.Expect("requested_bytes.all", stats.requested_bytes.all().current, live_requested);
  recount.Expect("allocated_bytes.all (from the live list)", stats.allocated_bytes.all().current,
                 live_block_bytes);
  recount.Expect("oversize_allocations", stats.oversize_allocations.current, live_oversize);

  // From the snapshot's blocks.
  PoolCounts allocation, allocated_bytes, active, active_bytes, split, split_bytes, segments,
      segment_bytes;
  const std::size_t granularity = device.Capabilities().granularity;
  std::vector<std::pair<bool, DevicePtr>> pages_in_use;  // (small pool, page address)
  PoolCounts whole_pages;
  std::int64_t oversize_segments = 0;
  for (const SegmentInfo& segment : snapshot) {
    segments.Add(segment.small, 1);
    segment_bytes.Add(segment.small, static_cast<std::int64_t>(segment.size));
    if (segment.size >= max_split) ++oversize_segments;
    const bool split_segment = segment.blocks.size() > 1;
    for (const BlockInfo& block : segment.blocks) {
      const auto bytes = static_cast<std::int64_t>(block.size);
      if (block.state == BlockState::kAllocated) {
        allocation.Add(segment.small, 1);
        allocated_bytes.Add(segment.small, bytes);
      }
      if (IsActive(block.state)) {
        active.Add(segment.small, 1);
        active_bytes.Add(segment.small, bytes);
      } else if (!vmm && split_segment) {
        split.Add(segment.small, 1);
        split_bytes.Add(segment.small, bytes);
      }
      if (vmm && (IsActive(block.state) || block.state == BlockState::kCached)) {
        for (DevicePtr page = block.addr / granularity * granularity;
             page < block.addr + block.size; page += granularity) {
          pages_in_use.push_back({segment.small, page});
        }
      }
      if (vmm && IsActive(block.state)) {
        const DevicePtr first = (block.addr + granularity - 1) / granularity;
        const DevicePtr end = (block.addr + block.size) / granularity;
        if (end > first) whole_pages.Add(segment.small, static_cast<std::int64_t>(end - first));
      }
    }
  }
  recount.Expect("allocation", stats.allocation, allocation);
  recount.Expect("allocated_bytes", stats.allocated_bytes, allocated_bytes);
  recount.Expect("active", stats.active, active);
  recount.Expect("active_bytes", stats.active_bytes, active_bytes);

  if (vmm) {
    // Snapshot segments are the mapped runs: each chunk once, so together they are what is
    // held (no chunk is held unmapped in these runs: no map fails, no unmap_on_free).
    std::sort(pages_in_use.begin(), pages_in_use.end());
    pages_in_use.erase(std::unique(pages_in_use.begin(), pages_in_use.end()), pages_in_use.end());
    PoolCounts pages_split_bytes, pages_split;
    for (const auto& [small, page] : pages_in_use) {
      pages_split_bytes.Add(small, static_cast<std::int64_t>(granularity));
      pages_split.Add(small, 1);
    }
    for (int p = 0; p < 3; ++p) {
      pages_split_bytes.value[p] -= active_bytes.value[p];
      pages_split.value[p] -= whole_pages.value[p];
    }
    if (scope.no_graphs) {
      recount.Expect("inactive_split", stats.inactive_split, pages_split);
      recount.Expect("inactive_split_bytes", stats.inactive_split_bytes, pages_split_bytes);
    }
    recount.Expect("reserved_bytes (the mapped runs)", stats.reserved_bytes, segment_bytes);
    if (scope.device_is_ours) {
      recount.Expect("reserved_bytes.all (the device's chunks)", stats.reserved_bytes.all().current,
                     static_cast<std::int64_t>(device_counts.chunk_bytes));
      recount.Expect("segment.all (address ranges)", stats.segment.all().current,
                     static_cast<std::int64_t>(device_counts.live_reservations));
      recount.Expect("address_space_reserved_bytes", stats.address_space_reserved_bytes,
                     static_cast<std::int64_t>(device_counts.reserved_bytes));
      recount.Expect("num_map_calls - num_unmap_calls", stats.num_map_calls - stats.num_unmap_calls,
                     static_cast<std::int64_t>(device_counts.live_mappings));
    }
  } else {
    recount.Expect("inactive_split", stats.inactive_split, split);
    recount.Expect("inactive_split_bytes", stats.inactive_split_bytes, split_bytes);
    recount.Expect("segment", stats.segment, segments);
    recount.Expect("reserved_bytes", stats.reserved_bytes, segment_bytes);
    recount.Expect("oversize_segments", stats.oversize_segments.current, oversize_segments);
    if (scope.device_is_ours) {
      recount.Expect("reserved_bytes.all (the device's allocations)",
                     stats.reserved_bytes.all().current,
                     static_cast<std::int64_t>(device_counts.malloc_bytes));
    }
  }
  if (scope.out_of_memory_failures >= 0) {
    recount.Expect("num_ooms", stats.num_ooms, scope.out_of_memory_failures);
  }
  if (scope.device_is_ours) {
    recount.Expect("num_sync_all_streams", stats.num_sync_all_streams,
                   device_counts.Calls(SimOp::kSynchronizeDevice));
    recount.Expect(
        "num_device_alloc - num_device_free", stats.num_device_alloc - stats.num_device_free,
        static_cast<std::int64_t>(device_counts.live_mallocs + device_counts.live_chunks));
  }
  return recount.Take();
}

}  // namespace vramcache
