// A block's moves between its states (block_lifecycle.h); the fast path's are in the header.
#include "allocator/core/block_lifecycle.h"

namespace vramcache {

absl::StatusOr<void*> BlockLifecycle::FinishAllocation(Block* block, std::size_t size,
                                                       std::size_t rounded,
                                                       StreamHandle alloc_stream) {
  p_.heap->RemoveFreeBlock(block);
  if (p_.placement->ShouldSplit(block, rounded)) p_.heap->Split(block, rounded);
  if (absl::Status s = p_.backing->AcquirePages(block); !s.ok()) {
    p_.heap->CoalesceAndInsert(block);
    return s;
  }
  return MarkAllocated(block, size, rounded, alloc_stream);
}

absl::StatusOr<Block*> BlockLifecycle::BorrowFromOtherStream(bool small, PoolId pool,
                                                             StreamHandle stream,
                                                             std::size_t rounded) {
  Block* best = p_.placement->BestFitOnOtherStream(small, pool, stream, rounded);
  if (best == nullptr) return nullptr;
  absl::StatusOr<bool> usable = p_.frees->OrderAfterOwner(best, stream, p_.cross_stream);
  if (!usable.ok()) return usable.status();
  if (!*usable) return nullptr;
  ++p_.stats->num_cross_stream_reuse;
  return best;
}

void BlockLifecycle::UndoAllocation(Block* block) {
  p_.ledger->CountUserFree(*block);
  p_.allocated_or_cached->erase(block->addr);
  ReturnToPool(block);
}

void BlockLifecycle::ReturnToPool(Block* block) {
  if (p_.debug != nullptr) p_.debug->PoisonIfPending(block);
  const bool small = block->segment->small;  // `block` may be merged away below
  p_.ledger->CountActive(*block, -1);
  p_.history->Record(TraceAction::kFreeCompleted, block->addr, block->size, block->stream);
  ReleaseBacking(block);
  if (block->segment->single_use) {
    rungs_->RetireRange(block);
  } else {
    p_.heap->CoalesceAndInsert(block);
  }
  p_.ledger->SettleVmmSplitStats(small);  // only its pool's pages changed
}

absl::Status BlockLifecycle::EndUserFree(Block* block) {
  StreamUses::AddBorrower(block);
  if (block->used_by_destroyed_stream) {
    p_.frees->AwaitDeviceSynchronization(block);
  } else if (block->stream_uses.empty() && block->foreign_uses.empty()) {
    ReturnToPool(block);
  } else if (p_.graph_pools->AnyCapturing(block->stream_uses)) {
    p_.frees->DeferUntilCaptureEnds(block);
  } else {
    return p_.frees->DeferFree(block);
  }
  return absl::OkStatus();
}

void BlockLifecycle::FlushCachedBlocks(const std::vector<Block*>& blocks) {
  for (Block* block : blocks) {
    p_.allocated_or_cached->erase(block->addr);
    p_.ledger->CountSplitBlock(*block, -1);
    ReleaseBacking(block);
    p_.heap->CoalesceAndInsert(block);
  }
  p_.ledger->SettleVmmSplitStats();
}

absl::Status BlockLifecycle::ReturnCompletedFrees(std::uint64_t synced_through,
                                                  bool into_reuse_cache) {
  p_.backing->FlushDeferredReleases(Streams());
  completing_into_reuse_cache_ = into_reuse_cache;
  absl::Status status = p_.frees->ReturnCompleted(synced_through);
  completing_into_reuse_cache_ = false;
  return status;
}

// Nobody's work touches the block any more. A block of the default pool goes into the reuse
// cache whole, under the stream that allocated it last (its own, or the one that borrowed it),
// with its pages still held: no page release and no free mark is recorded now; the mark is
// recorded on the block's stream if and when the cache is flushed, and the borrowing stream
// takes it back without borrowing again (docs/design.md, "Why reuse is safe": one event per
// cross-stream free). With the debug modes a borrowed block returns to the pool instead: its
// poison fill runs on its own stream, which the borrower is not ordered after.
void BlockLifecycle::CompletePendingFree(Block* block) {
  if (completing_into_reuse_cache_ && block->pool_id == kDefaultPool &&
      (block->alloc_stream == block->stream || p_.debug == nullptr) &&
      block->foreign_uses.empty() && !block->segment->single_use &&
      !p_.frees->IsDestroyed(block->stream) && !p_.frees->IsDestroyed(block->alloc_stream) &&
      p_.reuse_cache->HasRoomFor(block->size)) {
    // Cached blocks stay in the pointer map (see PushReuseCache).
    p_.allocated_or_cached->try_emplace(block->addr, block);
    PushReuseCache(block);
    return;
  }
  ReturnToPool(block);
}

std::vector<Segment*> BlockLifecycle::ForgetAll() {
  FlushReuseCache();
  for (auto& [addr, block] : *p_.allocated_or_cached) {
    p_.ledger->CountUserFree(*block);
    p_.ledger->CountActive(*block, -1);
  }
  p_.allocated_or_cached->clear();
  std::vector<Segment*> released;
  for (auto& [base, segment] : p_.heap->segments()) released.push_back(segment);
  p_.heap->segments().clear();
  p_.backing->DropDeferredReleases();
  for (Segment* segment : released) {
    p_.backing->Detached(*segment);
    for (Block* b = segment->head; b != nullptr; b = b->next) {
      if (b->state == BlockState::kPendingFree) p_.ledger->CountActive(*b, -1);
      if (b->state == BlockState::kParked) p_.ledger->CountSplitBlock(*b, -1);
    }
    p_.heap->ForgetSegmentBlocks(segment);
  }
  p_.heap->Clear();
  return released;
}

}  // namespace vramcache
