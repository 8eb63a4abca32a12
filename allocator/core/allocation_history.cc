// The allocation history (allocation_history.h) and the names of its actions.
#include "allocator/core/allocation_history.h"

#include "absl/strings/str_format.h"

namespace vramcache {

const char* TraceActionName(TraceAction action) {
  switch (action) {
    case TraceAction::kAlloc:
      return "alloc";
    case TraceAction::kFreeRequested:
      return "free_requested";
    case TraceAction::kFreeCompleted:
      return "free_completed";
    case TraceAction::kSegmentAlloc:
      return "segment_alloc";
    case TraceAction::kSegmentFree:
      return "segment_free";
    case TraceAction::kOom:
      return "oom";
  }
  return "unknown";
}

absl::Status AllocationHistory::NameAllocation(const absl::Status& status,
                                               DevicePtr block_addr) const {
  if (status.ok() || !absl::IsDataLoss(status) || !enabled_) return status;
  for (std::size_t position = entries_.size(); position > 0; --position) {
    const TraceEntry& entry = entries_[position - 1];
    if (entry.action == TraceAction::kAlloc && entry.addr == block_addr) {
      return absl::DataLossError(absl::StrFormat(
          "%s; allocated at t=%d ns on stream %#x (history entry %d of %d)", status.message(),
          entry.time_ns, entry.stream, position, entries_.size()));
    }
  }
  return status;
}

}  // namespace vramcache
