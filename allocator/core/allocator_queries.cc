// The allocator's answers about what it holds (allocator_queries.h).
#include "allocator/core/allocator_queries.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iterator>
#include <string>

#include "absl/strings/str_format.h"
#include "allocator/core/invariant_check.h"

namespace vramcache {

DeviceStats AllocatorQueries::Stats() const {
  DeviceStats copy = *p_.stats;
  copy.max_split_size = p_.settings->max_split_size == SIZE_MAX
                            ? -1
                            : static_cast<std::int64_t>(p_.settings->max_split_size);
  copy.budget_bytes = static_cast<std::int64_t>(p_.limits->budget());
  copy.address_space_reserved_bytes = static_cast<std::int64_t>(p_.backing->AddressSpaceBytes());
  return copy;
}

absl::StatusOr<std::size_t> AllocatorQueries::AllocationSize(DevicePtr user_ptr) const {
  auto it = p_.allocated_or_cached->find(user_ptr - p_.front_bytes);
  if (it == p_.allocated_or_cached->end() || it->second->state != BlockState::kAllocated) {
    return NotLiveError(user_ptr);
  }
  return it->second->size;
}

absl::Status AllocatorQueries::NotLiveError(DevicePtr user_ptr) {
  return absl::NotFoundError(absl::StrFormat("vramcache: %#x is not a live allocation", user_ptr));
}

const Segment* AllocatorQueries::SegmentHolding(DevicePtr addr) const {
  auto it = p_.heap->segments().upper_bound(addr);
  if (it == p_.heap->segments().begin()) return nullptr;
  const Segment* segment = std::prev(it)->second;
  return addr < segment->base + segment->size ? segment : nullptr;
}

absl::StatusOr<std::pair<DevicePtr, std::size_t>> AllocatorQueries::BaseAllocation(
    DevicePtr addr) const {
  if (const Segment* segment = SegmentHolding(addr)) {
    return std::make_pair(segment->base, segment->size);
  }
  return absl::NotFoundError(
      absl::StrFormat("vramcache: %#x is not inside any segment of this allocator", addr));
}

absl::Status AllocatorQueries::UnknownPointerError(const char* operation, DevicePtr addr) const {
  if (const Segment* segment = SegmentHolding(addr)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "vramcache: %s of %#x: not a live allocation (a double free, or a pointer into the "
        "middle of a block of the %d-byte segment at %#x)",
        operation, addr, segment->size, segment->base));
  }
  return absl::InvalidArgumentError(absl::StrFormat(
      "vramcache: %s of %#x: this pointer was never allocated by vramcache on device %d", operation,
      addr, p_.device->Capabilities().ordinal));
}

std::size_t AllocatorQueries::LargestFreeBlock() const {
  return p_.backing->LargestAllocation(p_.reuse_cache->LargestBlock(), [this] {
    // New memory: what the device has free, and no more than the budget leaves.
    std::size_t headroom = 0;
    if (absl::StatusOr<DeviceMemInfo> info = p_.device->MemInfo(); info.ok()) {
      headroom = info->free_bytes;
    }
    return std::min(headroom, p_.limits->Headroom(p_.backing->HeldBytes()));
  });
}

std::vector<SegmentInfo> AllocatorQueries::Snapshot() const {
  std::vector<SegmentInfo> out;
  out.reserve(p_.heap->segments().size());
  for (const auto& [base, segment] : p_.heap->segments()) {
    p_.backing->AppendSnapshot(*segment, &out);
  }
  return out;
}

absl::Status AllocatorQueries::CheckInvariants() const {
  return CheckAllocatorInvariants(AllocatorStateView{
      .segments = p_.heap->segments(),
      .small_free = p_.heap->small_free(),
      .large_free = p_.heap->large_free(),
      .allocated_or_cached = *p_.allocated_or_cached,
      .first_fit_segments = p_.heap->first_fit_segments(),
      .reuse_cache = *p_.reuse_cache,
      .vmm = p_.chunks,
      .stats = *p_.stats,
  });
}

void AllocatorQueries::CheckInvariantsOrDie() const {
  if (absl::Status s = CheckInvariants(); !s.ok()) {
    fprintf(stderr, "vramcache invariant violated: %s\n", std::string(s.message()).c_str());
    abort();
  }
}

}  // namespace vramcache
