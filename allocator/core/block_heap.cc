// The block heap's operations (block_heap.h): the segment's block list stays a tiling in
// address order through every split and coalesce, and every free block is in exactly one free
// set (and its segment's first-fit index when searched first fit).
#include "allocator/core/block_heap.h"

#include <algorithm>
#include <cassert>
#include <iterator>

#include "absl/base/attributes.h"

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
  ForgetNotes();  // the erases below move the free sets' elements
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
  ForgetNotes();
  segments_.clear();
  small_free_.clear();
  large_free_.clear();
  first_fit_segments_.clear();
}

void BlockHeap::AddFreeBlock(Block* block) { AddFree(block, /*indexed=*/false); }

void BlockHeap::AddFree(Block* block, bool indexed, bool in_set) {
  block->state = BlockState::kFree;
  // Only a block that covers its segment is stamped (the oldest wholly free segments go first).
  if (!block->is_split()) block->last_free_time = ++free_order_;
  ForgetNotes();  // an insert moves the sets' elements
  if (!in_set) FreeSetOf(block).insert(block);
  if (UsesFirstFit(block->segment)) {
    if (!indexed) block->segment->free_by_addr.insert(block);
    block->segment->free_max = std::max(block->segment->free_max, block->size);
  }
  ledger_->CountSplitBlock(*block, +1);
}

void BlockHeap::EraseFromFreeSet(Block* block) {
  if (block == found_) {
    assert(*found_at_ == block);
    FreeSetOf(block).erase(found_at_);
  } else {
    FreeSetOf(block).erase(block);
  }
}

BlocksByAddress::iterator BlockHeap::IndexedAt(Block* block) {
  if (block == found_by_addr_) {
    assert(*found_by_addr_at_ == block);
    return found_by_addr_at_;
  }
  return block->segment->free_by_addr.find(block);
}

void BlockHeap::RemoveFreeBlock(Block* block) {
  EraseFromFreeSet(block);
  Segment* segment = block->segment;
  if (UsesFirstFit(segment)) {
    const auto at = IndexedAt(block);
    if (at != segment->free_by_addr.end()) {
      segment->free_by_addr.erase(at);
      if (block->size == segment->free_max) segment->free_max_stale = true;
    }
  }
  ForgetNotes();  // an erase moves the sets' elements
  ledger_->CountSplitBlock(*block, -1);
}

void BlockHeap::ReplaceInPlace([[maybe_unused]] BlocksByAddress& set, BlocksByAddress::iterator at,
                               Block* block) {
  assert(at != set.end());
  assert(at == set.begin() || (*std::prev(at))->addr < block->addr);
  assert(std::next(at) == set.end() || block->addr < (*std::next(at))->addr);
  const_cast<Block*&>(*at) = block;
}

bool BlockHeap::RemoveFreeBlockOfFirstFit(Block* block, BlocksByAddress::iterator at,
                                          Block* successor) {
  Segment* segment = block->segment;
  if (at == segment->free_by_addr.end()) {
    RemoveFreeBlock(block);
    return false;
  }
  assert(*at == block);
  EraseFromFreeSet(block);
  if (successor != nullptr) ReplaceInPlace(segment->free_by_addr, at, successor);
  if (block->size == segment->free_max) segment->free_max_stale = true;
  ForgetNotes();
  ledger_->CountSplitBlock(*block, -1);
  return true;
}

FreeBlockSet::iterator BlockHeap::FreeSetAt(Block* block) {
  if (block == found_) {
    assert(*found_at_ == block);
    return found_at_;
  }
  return FreeSetOf(block).find(block);
}

ABSL_ATTRIBUTE_ALWAYS_INLINE inline bool BlockHeap::KeepsPlace(const FreeBlockSet& set,
                                                               FreeBlockSet::iterator at,
                                                               std::size_t size, DevicePtr addr,
                                                               bool smaller) {
  const FreeBlockKey key{(*at)->pool_id, (*at)->stream, size, addr};
  const FreeBlockOrder less;
  assert(smaller ? less(key, *at) : less(*at, key));
  if (smaller) return at == set.begin() || less(*std::prev(at), key);
  const auto after = std::next(at);
  return after == set.end() || less(key, *after);
}

// The same changes as RemoveFreeBlock, Split and AddFreeBlock, in that order (the statistics
// move as they did). The rest of a best fit often sorts where the block did (no free block of
// the stream has a size between them: the best fit's own property when the rest is at least
// the request), and in a first-fit segment its address always lies between the block's
// neighbours'.
void BlockHeap::TakeFreeBlock(Block* block, bool split, std::size_t rounded) {
  if (!split) {
    RemoveFreeBlock(block);
    return;
  }
  FreeBlockSet& set = FreeSetOf(block);
  const auto at = FreeSetAt(block);
  const bool in_place = at != set.end() && KeepsPlace(set, at, block->size - rounded,
                                                      block->addr + rounded, /*smaller=*/true);
  Segment* segment = block->segment;
  BlocksByAddress::iterator indexed_at;
  bool indexed = false;
  if (UsesFirstFit(segment)) {
    indexed_at = IndexedAt(block);
    indexed = indexed_at != segment->free_by_addr.end();
    if (indexed && block->size == segment->free_max) segment->free_max_stale = true;
  }
  if (!in_place && at != set.end()) set.erase(at);
  ForgetNotes();
  ledger_->CountSplitBlock(*block, -1);
  Block* rest = CarveRest(block, rounded);
  if (in_place) ReplaceInFreeSet(at, rest);
  if (indexed) ReplaceInPlace(segment->free_by_addr, indexed_at, rest);
  AddFree(rest, indexed, in_place);
}

// The same changes as CoalesceAndInsert's RemoveFreeBlock(neighbour), merge and AddFreeBlock.
void BlockHeap::MergeWithOneNeighbour(Block* block, Block* neighbour) {
  const bool lower = neighbour == block->prev;
  Block* merged = lower ? neighbour : block;  // the Block object that remains
  FreeBlockSet& set = FreeSetOf(neighbour);
  const auto at = FreeSetAt(neighbour);
  const bool in_place = at != set.end() && KeepsPlace(set, at, neighbour->size + block->size,
                                                      merged->addr, /*smaller=*/false);
  Segment* segment = neighbour->segment;
  bool indexed = false;
  if (UsesFirstFit(segment)) {
    const auto indexed_at = IndexedAt(neighbour);
    indexed = indexed_at != segment->free_by_addr.end();
    if (indexed) {
      // The lower neighbour keeps its address; the freed block, lower, takes its neighbour's.
      if (!lower) ReplaceInPlace(segment->free_by_addr, indexed_at, block);
      if (neighbour->size == segment->free_max) segment->free_max_stale = true;
    }
  }
  if (!in_place && at != set.end()) set.erase(at);
  if (in_place && !lower) ReplaceInFreeSet(at, block);
  ForgetNotes();
  ledger_->CountSplitBlock(*neighbour, -1);
  if (lower) {
    neighbour->size += block->size;
    neighbour->next = block->next;
    if (block->next != nullptr) block->next->prev = neighbour;
    DeleteBlock(block);
  } else {
    block->size += neighbour->size;
    block->next = neighbour->next;
    if (neighbour->next != nullptr) neighbour->next->prev = block;
    DeleteBlock(neighbour);
  }
  AddFree(merged, indexed, in_place);
}

void BlockHeap::ForgetFirstFit(Block* block) {
  Segment* segment = block->segment;
  ForgetNotes();
  if (!UsesFirstFit(segment) || segment->free_by_addr.erase(block) == 0) return;
  if (block->size == segment->free_max) segment->free_max_stale = true;
}

}  // namespace vramcache
