// Whole-trace summaries computed from the events alone, with no allocator involved.
#include "allocator/trace/trace.h"

namespace vramcache {

std::size_t Trace::NumAllocations() const {
  std::size_t allocations = 0;
  for (const TraceEvent& event : events) {
    allocations += event.kind == TraceEventKind::kAllocate ? 1 : 0;
  }
  return allocations;
}

std::uint64_t PeakLiveBytes(const Trace& trace) {
  // A trace is consistent by construction (TraceBuilder), so every free matches a live
  // allocation and carries its size.
  std::uint64_t live = 0;
  std::uint64_t peak = 0;
  for (const TraceEvent& event : trace.events) {
    if (event.kind == TraceEventKind::kAllocate) {
      live += event.size;
      if (live > peak) peak = live;
    } else {
      live -= event.size;
    }
  }
  return peak;
}

}  // namespace vramcache
