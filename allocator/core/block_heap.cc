// The block heap's operations (block_heap.h): the segment's block list stays a tiling in
// address order through every split and coalesce, and every free block is in exactly one free
// set (and its segment's first-fit index when searched first fit).
#include "allocator/core/block_heap.h"

#include <algorithm>
#include <cassert>

namespace vramcache {

BlockHeap::~BlockHeap() {
  for (Block* block : spare_blocks_) delete block;
}

Segment* BlockHeap::Adopt(DevicePtr base, std::size_t size, bool small, StreamHandle stream,
                          PoolId pool) {
  auto* segment = new Segment{base, size, stream, small, pool, nullptr};
  Block* block = NewBlock();
  block->addr = base;
  block->size = size;
  block->stream = stream;
  block->pool_id = pool;
  block->segment = segment;
  segment->head = block;
  segments_.emplace(base, segment);
  if (UsesFirstFit(segment)) {
    segment->rank = next_segment_rank_++;
    first_fit_segments_.emplace(segment->rank, segment);
  }
  return segment;
}

void BlockHeap::Unlink(Segment* segment) {
  RemoveFreeBlock(segment->head);
  segments_.erase(segment->base);
  first_fit_segments_.erase(segment->rank);
}

std::vector<Segment*> BlockHeap::OldestWhollyFreeSegments(
    std::size_t bytes_wanted, const std::function<bool(const Segment&)>& releasable) const {
  std::vector<Segment*> candidates;
  for (const auto& [base, segment] : segments_) {
    if (releasable(*segment) && segment->IsWhollyFree()) candidates.push_back(segment);
  }
  std::sort(candidates.begin(), candidates.end(), [](const Segment* a, const Segment* b) {
    return a->head->last_free_time < b->head->last_free_time;
  });
  std::size_t collected = 0;
  std::size_t taken = 0;
  while (taken < candidates.size() && collected < bytes_wanted) {
    collected += candidates[taken++]->size;
  }
  candidates.resize(taken);
  return candidates;
}

void BlockHeap::ForgetSegmentBlocks(Segment* segment) {
  found_ = nullptr;  // the erases below move the free sets' elements
  for (Block* b = segment->head; b != nullptr;) {
    Block* next = b->next;
    if (b->state == BlockState::kFree) {
      // Blocks still in a free set are removed by the callers that own that decision;
      // whole-segment releases removed the head already.
      ForgetFirstFit(b);
      if (FreeSetOf(b).erase(b) > 0) ledger_->CountSplitBlock(*b, -1);
    }
    DeleteBlock(b);
    b = next;
  }
  segment->head = nullptr;
}

void BlockHeap::Clear() {
  found_ = nullptr;
  segments_.clear();
  small_free_.clear();
  large_free_.clear();
  first_fit_segments_.clear();
}

void BlockHeap::AddFreeBlock(Block* block) {
  block->state = BlockState::kFree;
  // Only a block that covers its segment has its time read (the oldest wholly free segments
  // go first). The others are not stamped: a clock read cost the fast path ~19 ns a pair.
  if (!block->is_split()) block->last_free_time = clock_->NowNanos();
  found_ = nullptr;  // an insert moves the free sets' elements
  FreeSetOf(block).insert(block);
  if (UsesFirstFit(block->segment)) {
    block->segment->free_by_addr.insert(block);
    block->segment->free_max = std::max(block->segment->free_max, block->size);
  }
  ledger_->CountSplitBlock(*block, +1);
}

void BlockHeap::RemoveFreeBlock(Block* block) {
  if (block == found_) {
    assert(*found_at_ == block);
    FreeSetOf(block).erase(found_at_);
  } else {
    FreeSetOf(block).erase(block);
  }
  found_ = nullptr;  // an erase moves the free sets' elements
  ForgetFirstFit(block);
  ledger_->CountSplitBlock(*block, -1);
}

void BlockHeap::ForgetFirstFit(Block* block) {
  Segment* segment = block->segment;
  if (!UsesFirstFit(segment) || segment->free_by_addr.erase(block) == 0) return;
  if (block->size == segment->free_max) segment->free_max_stale = true;
}

}  // namespace vramcache
