// The allocation history (record_history): the newest entries of what the allocator did, in
// PyTorch's vocabulary (allocations, frees requested and completed, segments adopted and
// released, out-of-memory errors), each stamped by the allocator's clock; and, for a damaged
// guard band, the entry that says where the allocation came from. Called with the allocator's
// lock held.
#pragma once

#include <cstddef>
#include <vector>

#include "absl/status/status.h"
#include "allocator/core/caching_allocator.h"
#include "allocator/core/clock.h"
#include "allocator/core/config.h"
#include "allocator/core/ring_buffer.h"

namespace vramcache {

class AllocationHistory {
 public:
  // Keeps the newest config.history_capacity entries when config.record_history, else none.
  // `clock` must outlive the history.
  AllocationHistory(const AllocatorConfig& config, Clock* clock)
      : enabled_(config.record_history),
        clock_(clock),
        entries_(config.record_history ? config.history_capacity : 0) {}

  // Defined here, inline: the allocation and free fast paths record through it.
  void Record(TraceAction action, DevicePtr addr, std::size_t size, StreamHandle stream) {
    if (!enabled_) return;
    entries_.Push({action, addr, size, stream, clock_->NowNanos()});
  }

  // Oldest first; empty unless record_history.
  std::vector<TraceEntry> OldestFirst() const { return entries_.OldestFirst(); }

  // `status` as a damaged guard band of the block at `block_addr` reported it (DataLoss), with
  // the newest allocation entry of that block appended: its time, stream and position in the
  // history. Any other status, or one whose allocation the history no longer holds, as it is.
  absl::Status NameAllocation(const absl::Status& status, DevicePtr block_addr) const;

 private:
  const bool enabled_;
  Clock* const clock_;
  RingBuffer<TraceEntry> entries_;
};

}  // namespace vramcache
