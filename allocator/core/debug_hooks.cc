// The debug modes' steps in a block's life (debug_hooks.h).
#include "allocator/core/debug_hooks.h"

#include <algorithm>
#include <vector>

namespace vramcache {

GuardedBlock DebugHooks::BeginCheckedFree(Block* block) const {
  block->freeing = true;
  GuardedBlock guarded = Guarded(block);
  // A destroyed stream can neither be asked about a capture nor synchronized: the bands of a
  // block it allocated are checked by CheckLiveBlocks (after a device synchronization) instead.
  if (frees_->IsDestroyed(guarded.stream)) guarded.stream_dead = true;
  return guarded;
}

absl::Status DebugHooks::OnUserFree(Block* block, const absl::Status& band_status) const {
  // A private pool's freed blocks still belong to its graph, whose replays use their addresses
  // (on any stream): poisoning them would corrupt the replays.
  block->poison_pending =
      guard_->poison_on_free() && !block->segment->single_use && block->pool_id == kDefaultPool;
  return history_->NameAllocation(band_status, block->addr);
}

void DebugHooks::PoisonIfPending(Block* block) const {
  if (!block->poison_pending) return;
  block->poison_pending = false;
  // A destroyed home stream can order nothing, and the next user (any stream: another stream
  // may borrow the block) waits on no event: such a block is not poisoned.
  if (frees_->IsDestroyed(block->stream)) return;
  GuardedBlock freed = Guarded(block);
  freed.stream = block->stream;  // every other stream's use has completed by now
  // A failed fill is a device error that the next operation on the device reports too.
  guard_->PoisonFreed(freed).IgnoreError();
}

absl::Status DebugHooks::CheckLiveBlocks(
    const absl::flat_hash_map<DevicePtr, Block*>& allocated_or_cached,
    bool capture_under_way) const {
  if (!guard_->canaries()) return absl::OkStatus();
  if (capture_under_way) {
    return absl::FailedPreconditionError(
        "vramcache: check_canaries during a CUDA graph capture: it must synchronize the "
        "device, which would invalidate the capture; call it after the capture ends");
  }
  std::vector<GuardedBlock> live;
  for (const auto& [addr, block] : allocated_or_cached) {
    if (block->state == BlockState::kAllocated) live.push_back(Guarded(block));
  }
  std::sort(live.begin(), live.end(), [](const GuardedBlock& a, const GuardedBlock& b) {
    return a.block_addr < b.block_addr;
  });
  return guard_->CheckAll(live);
}

}  // namespace vramcache
