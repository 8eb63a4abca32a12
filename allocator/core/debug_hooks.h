// The debug modes' steps in a block's life, under the allocator's lock: the guard bands'
// geometry of a block, a user's free marking the block for poison (and naming its origin in a
// damaged band's report), the poison fill once the free has completed, a new allocation's bands
// and zeroing, and the canary check of every live block. DebugGuard (debug_guard.h) holds the
// device policy they apply; the facade makes the one blocking step, a freed block's band check,
// without the lock (it synchronizes the allocating stream). A plain class called with the
// allocator's lock held, as the chunk pool is; the allocator makes one only when a debug mode is
// on, so the hot path checks a single pointer.
#pragma once

#include <cstddef>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "allocator/core/allocation_history.h"
#include "allocator/core/block.h"
#include "allocator/core/debug_guard.h"
#include "allocator/core/stream_ordered_frees.h"

namespace vramcache {

class DebugHooks {
 public:
  // All must outlive the hooks. `frees` says which streams were destroyed; `history` names a
  // damaged allocation's origin when record_history is on.
  DebugHooks(DebugGuard* guard, const StreamOrderedFrees* frees, const AllocationHistory* history)
      : guard_(guard), frees_(frees), history_(history), front_bytes_(guard->front_bytes()) {}

  // `block` as the guard sees it: the block, the user's part after the front band, and the
  // stream that allocated it.
  GuardedBlock Guarded(const Block* block) const {
    return GuardedBlock{block->addr, block->size, block->addr + front_bytes_, block->requested,
                        block->alloc_stream};
  }

  // Canaries: the user began freeing `block`. It is marked as being freed (a second free or a
  // record_stream of it is refused until the free ends), and its bands' geometry returned for
  // the check the facade makes without the lock.
  GuardedBlock BeginCheckedFree(Block* block) const;
  // The user's free of `block` (its band check found `band_status`, OK without canaries): marks
  // it for poisoning when its free completes, and names the allocation's history entry in a
  // damaged band's report.
  absl::Status OnUserFree(Block* block, const absl::Status& band_status) const;
  // The free of `block` completed (it returns to the heap or enters the reuse cache): the
  // poison marked at the user's free is written now, on the block's own stream.
  void PoisonIfPending(Block* block) const;
  // `block` was just handed out: its bands are written and its user bytes zeroed on the
  // allocating stream, before that stream's next kernel.
  absl::Status OnAllocate(const Block* block) const { return guard_->OnAllocate(Guarded(block)); }
  // Canaries: every allocated block's bands, checked in one device call after a device
  // synchronization; refused while a capture the allocator knows of is under way.
  absl::Status CheckLiveBlocks(const absl::flat_hash_map<DevicePtr, Block*>& allocated_or_cached,
                               bool capture_under_way) const;

 private:
  DebugGuard* const guard_;
  const StreamOrderedFrees* const frees_;
  const AllocationHistory* const history_;
  const std::size_t front_bytes_;
};

}  // namespace vramcache
