// A block's moves between its states (block_lifecycle.h): the rare ones (the hot ones are
// inline in the header).
#include "allocator/core/block_lifecycle.h"

namespace vramcache {

absl::StatusOr<void*> BlockLifecycle::FinishAllocation(Block* block, std::size_t size,
                                                       std::size_t rounded,
                                                       StreamHandle alloc_stream) {
  p_.heap->TakeFreeBlock(block, p_.placement->ShouldSplit(block, rounded), rounded);
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
  // Virtual-memory mode: the best fit is the block this stream borrowed last, for the same size,
  // and gave back (its free went home to the owner's range; nobody used it since), so the two
  // streams keep trading it, paying an event at every borrow and at every free. A range of its own
  // costs only address space (the pages come from the same chunk pool either way), and from then on
  // its requests are served from it with no event: the growth path reserves one (docs/design.md,
  // "Borrowing").
  if (p_.grow_before_reborrowing) {
    const LastBorrow trade{best->addr, rounded};
    auto [last, first] = last_borrow_.try_emplace(stream, trade);
    if (!first && best->alloc_stream == stream && last->second == trade) return nullptr;
    last->second = trade;
  }
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

void BlockLifecycle::FlushCachedBlocks(const std::vector<Block*>& blocks) {
  for (Block* block : blocks) {
    p_.allocated_or_cached->erase(block->addr);
    p_.ledger->CountSplitBlock(*block, -1);
    ReleaseBacking(block);
    p_.heap->CoalesceAndInsert(block);
  }
  p_.ledger->SettleVmmSplitStats();
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
