// The block heap: segments by address, the free sets of both pools, virtual-memory mode's
// first-fit index, and the operations that keep them consistent (adopt a segment, split a
// block, coalesce a freed one with its free neighbours, unlink a segment, forget its blocks),
// and which wholly free segments a release would take. It makes no device call and decides
// nothing about placement or when to release; the free-set transitions move the split
// statistics through the ledger. Not thread-safe: called with the allocator's lock.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

#include "absl/container/btree_map.h"
#include "allocator/core/block.h"
#include "allocator/core/clock.h"
#include "allocator/core/stats_ledger.h"

namespace vramcache {

class BlockHeap {
 public:
  // `ledger` and `clock` must outlive the heap. `first_fit_large`: virtual-memory mode, whose
  // large segments are searched first fit and so index their free blocks by address.
  BlockHeap(StatsLedger* ledger, Clock* clock, bool first_fit_large)
      : ledger_(ledger), clock_(clock), first_fit_large_(first_fit_large) {}
  // Frees the recycled Block objects (segments and their blocks belong to the allocator until
  // it forgets them).
  ~BlockHeap();
  BlockHeap(const BlockHeap&) = delete;
  BlockHeap& operator=(const BlockHeap&) = delete;

  // A new segment of one block covering it, listed by address (and by rank when searched first
  // fit). The block is not yet free: the caller counts the segment, then calls AddFreeBlock.
  Segment* Adopt(DevicePtr base, std::size_t size, bool small, StreamHandle stream, PoolId pool);
  // Takes wholly free `segment` out of the heap: its one block leaves its free set, the segment
  // the address and first-fit indexes. Its blocks stay until ForgetSegmentBlocks.
  void Unlink(Segment* segment);
  // Recycles every block of `segment`, taking free ones out of the free sets first.
  void ForgetSegmentBlocks(Segment* segment);
  // Shutdown: every list emptied (the segments themselves are the caller's to release).
  void Clear();

  // The wholly free segments that `releasable` accepts, least recently freed first, as many as
  // it takes to collect `bytes_wanted` bytes (SIZE_MAX: all of them). Changes nothing.
  std::vector<Segment*> OldestWhollyFreeSegments(
      std::size_t bytes_wanted, const std::function<bool(const Segment&)>& releasable) const;

  // Cuts `block` (just taken out of its free set) to `rounded` bytes; the rest becomes a free
  // block after it.
  void Split(Block* block, std::size_t rounded);
  // The block is free again: merged with free neighbours and put into its free set.
  void CoalesceAndInsert(Block* block);

  // Free-set membership. RemoveFreeBlock must run before a free block's size or neighbours
  // change, so that the split statistics subtract exactly what AddFreeBlock added.
  void AddFreeBlock(Block* block);
  void RemoveFreeBlock(Block* block);
  // A search (placement's best fit) found `block` at `at` in its free set: if the next change of
  // the free sets is that block's removal, it erases there instead of searching again (the slow
  // path finds a block and takes it out at once: a second search was 5% of mixed_sizes'
  // instructions, callgrind, issue #18). Any other change of the free sets forgets it.
  void NoteFound(Block* block, FreeBlockSet::iterator at) {
    found_ = block;
    found_at_ = at;
  }
  void ForgetFirstFit(Block* block);
  bool UsesFirstFit(const Segment* segment) const { return first_fit_large_ && !segment->small; }

  // Block objects are recycled: a heap under steady load allocates none.
  Block* NewBlock();
  void DeleteBlock(Block* block) { spare_blocks_.push_back(block); }

  absl::btree_map<DevicePtr, Segment*>& segments() { return segments_; }
  const absl::btree_map<DevicePtr, Segment*>& segments() const { return segments_; }
  FreeBlockSet& small_free() { return small_free_; }
  const FreeBlockSet& small_free() const { return small_free_; }
  FreeBlockSet& large_free() { return large_free_; }
  const FreeBlockSet& large_free() const { return large_free_; }
  absl::btree_map<std::uint64_t, Segment*>& first_fit_segments() { return first_fit_segments_; }
  const absl::btree_map<std::uint64_t, Segment*>& first_fit_segments() const {
    return first_fit_segments_;
  }

 private:
  FreeBlockSet& FreeSetOf(const Block* block) {
    return block->segment->small ? small_free_ : large_free_;
  }

  StatsLedger* const ledger_;
  Clock* const clock_;
  const bool first_fit_large_;
  absl::btree_map<DevicePtr, Segment*> segments_;
  FreeBlockSet small_free_;
  FreeBlockSet large_free_;
  // First-fit segments by rank (creation order), the search order of FirstFitBlock.
  absl::btree_map<std::uint64_t, Segment*> first_fit_segments_;
  std::uint64_t next_segment_rank_ = 1;
  std::vector<Block*> spare_blocks_;
  // NoteFound's block and its place in its free set; null when none is noted.
  Block* found_ = nullptr;
  FreeBlockSet::iterator found_at_;
};

// Split, CoalesceAndInsert and NewBlock are inline: every allocation that splits and every
// free that coalesces makes them, and as calls into block_heap.cc they cost the replays 30-36
// instructions each (callgrind, docs/benchmarks.md "#14 host cost"), as much as before the
// heap was its own component.
inline void BlockHeap::Split(Block* block, std::size_t rounded) {
  Block* rest = NewBlock();
  rest->addr = block->addr + rounded;
  rest->size = block->size - rounded;
  rest->stream = block->stream;
  rest->pool_id = block->pool_id;
  rest->segment = block->segment;
  rest->prev = block;
  rest->next = block->next;
  if (block->next != nullptr) block->next->prev = rest;
  block->next = rest;
  block->size = rounded;
  AddFreeBlock(rest);
}

inline void BlockHeap::CoalesceAndInsert(Block* block) {
  block->state = BlockState::kFree;
  block->stream_uses.clear();
  if (Block* prev = block->prev; prev != nullptr && prev->state == BlockState::kFree) {
    RemoveFreeBlock(prev);
    prev->size += block->size;
    prev->next = block->next;
    if (block->next != nullptr) block->next->prev = prev;
    DeleteBlock(block);
    block = prev;
  }
  if (Block* next = block->next; next != nullptr && next->state == BlockState::kFree) {
    RemoveFreeBlock(next);
    block->size += next->size;
    block->next = next->next;
    if (next->next != nullptr) next->next->prev = block;
    DeleteBlock(next);
  }
  AddFreeBlock(block);
}

inline Block* BlockHeap::NewBlock() {
  if (spare_blocks_.empty()) return new Block();
  Block* block = spare_blocks_.back();
  spare_blocks_.pop_back();
  block->Reset();
  return block;
}

}  // namespace vramcache
