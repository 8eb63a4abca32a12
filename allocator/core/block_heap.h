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
#include "allocator/core/stats_ledger.h"

namespace vramcache {

class BlockHeap {
 public:
  // `ledger` must outlive the heap. `first_fit_large`: virtual-memory mode, whose
  // large segments are searched first fit and so index their free blocks by address.
  BlockHeap(StatsLedger* ledger, bool first_fit_large)
      : ledger_(ledger), first_fit_large_(first_fit_large) {}
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
  // RemoveFreeBlock(block), then Split(block, rounded) when `split`: the same changes. In a
  // first-fit segment the rest takes the block's place in the address index, with no erase
  // and insert there.
  void TakeFreeBlock(Block* block, bool split, std::size_t rounded);
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
    found_by_addr_ = nullptr;
  }
  // The same for first fit's search, in the segment's address index (free_by_addr).
  void NoteFoundByAddress(Block* block, BlocksByAddress::iterator at) {
    found_ = nullptr;
    found_by_addr_ = block;
    found_by_addr_at_ = at;
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
  // AddFreeBlock; `indexed`: the block is in its segment's address index already; `in_set`: in
  // its free set already (given a place by MergeWithOneNeighbour or TakeFreeBlock).
  void AddFree(Block* block, bool indexed, bool in_set = false);
  // CoalesceAndInsert's merge of the freed `block` with `neighbour`, its only free neighbour
  // (prev or next): when the merged block's key keeps the neighbour's place in the free set,
  // the merged block takes that place (the neighbour's size grows there, or the freed block,
  // lower, replaces it) with no erase and insert; likewise in the address index.
  void MergeWithOneNeighbour(Block* block, Block* neighbour);
  // Whether a block of the same pool and stream as the element at `at`, of `size` bytes at
  // `addr`, sorts between that element's neighbours in `set`: `smaller`, it sorts before that
  // element, so only the lower neighbour can be in the way; else after it, and only the upper
  // neighbour can.
  static bool KeepsPlace(const FreeBlockSet& set, FreeBlockSet::iterator at, std::size_t size,
                         DevicePtr addr, bool smaller);
  // Where `block` is in its free set (noted, or searched).
  FreeBlockSet::iterator FreeSetAt(Block* block);
  // Puts `block` in the place of the element at `at` in a free set (KeepsPlace said it sorts
  // there); see ReplaceInPlace.
  static void ReplaceInFreeSet(FreeBlockSet::iterator at, Block* block) {
    const_cast<Block*&>(*at) = block;
  }
  // RemoveFreeBlock, for a first-fit segment's block at `at` in its address index, whose entry
  // there is left as it is (`successor` null: a merge keeps the block's address, or the caller
  // hands the place on itself) or given to `successor` (a block whose address lies between the
  // block's neighbours in the index). Whether the entry was there to keep or hand over (else the
  // block was in no index: removed as RemoveFreeBlock does).
  bool RemoveFreeBlockOfFirstFit(Block* block, BlocksByAddress::iterator at, Block* successor);
  // Erases `block` from its free set (where NoteFound found it, when it did).
  void EraseFromFreeSet(Block* block);
  // Where `block` is in its segment's address index (noted, or searched).
  BlocksByAddress::iterator IndexedAt(Block* block);
  // Puts `block` in the place of the element at `at`: the set's order stays as it is, since the
  // callers hand a place only to a block whose address lies between that element's neighbours.
  // absl's btree_set hands out const references, but its elements are not const objects.
  static void ReplaceInPlace(BlocksByAddress& set, BlocksByAddress::iterator at, Block* block);
  // The rest of a split block: `rounded` bytes stay with `block`; not yet in any free set.
  Block* CarveRest(Block* block, std::size_t rounded);
  void ForgetNotes() {
    found_ = nullptr;
    found_by_addr_ = nullptr;
  }

  StatsLedger* const ledger_;
  // The order in which blocks covering their whole segment became free (Block::last_free_time):
  // a count, not a clock read, since only the order is used (a clock read cost a large-block
  // free ~20 ns).
  std::int64_t free_order_ = 0;
  const bool first_fit_large_;
  absl::btree_map<DevicePtr, Segment*> segments_;
  FreeBlockSet small_free_;
  FreeBlockSet large_free_;
  // First-fit segments by rank (creation order), the search order of FirstFitBlock.
  absl::btree_map<std::uint64_t, Segment*> first_fit_segments_;
  std::uint64_t next_segment_rank_ = 1;
  std::vector<Block*> spare_blocks_;
  // NoteFound's block and its place in its free set, NoteFoundByAddress's and its place in its
  // segment's address index; null when none is noted. Every change of a free set or an address
  // index forgets both.
  Block* found_ = nullptr;
  FreeBlockSet::iterator found_at_;
  Block* found_by_addr_ = nullptr;
  BlocksByAddress::iterator found_by_addr_at_;
};

// Split, CoalesceAndInsert and NewBlock are inline: every allocation that splits and every
// free that coalesces makes them, and as calls into block_heap.cc they cost the replays 30-36
// instructions each (callgrind, docs/benchmarks.md "#14 host cost"), as much as before the
// heap was its own component.
inline Block* BlockHeap::CarveRest(Block* block, std::size_t rounded) {
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
  return rest;
}

inline void BlockHeap::Split(Block* block, std::size_t rounded) {
  AddFreeBlock(CarveRest(block, rounded));
}

// In a first-fit segment a merge changes no address the index holds but its neighbours': the
// lower free neighbour keeps its entry (its address stays), or the freed block takes its upper
// neighbour's; only a block with no free neighbour is inserted. Erasing and inserting there
// instead cost mixed_sizes 4% of its instructions (callgrind, issue #18).
inline void BlockHeap::CoalesceAndInsert(Block* block) {
  block->state = BlockState::kFree;
  block->stream_uses.clear();
  // One free neighbour, the common case: the merged block may keep the neighbour's places.
  const bool prev_free = block->prev != nullptr && block->prev->state == BlockState::kFree;
  const bool next_free = block->next != nullptr && block->next->state == BlockState::kFree;
  if (prev_free != next_free) {
    MergeWithOneNeighbour(block, prev_free ? block->prev : block->next);
    return;
  }
  const bool first_fit = UsesFirstFit(block->segment);
  bool indexed = false;  // `block` (the merged block after a merge) is in the address index
  if (Block* prev = block->prev; prev != nullptr && prev->state == BlockState::kFree) {
    if (first_fit) {
      indexed = RemoveFreeBlockOfFirstFit(prev, IndexedAt(prev), /*successor=*/nullptr);
    } else {
      RemoveFreeBlock(prev);
    }
    prev->size += block->size;
    prev->next = block->next;
    if (block->next != nullptr) block->next->prev = prev;
    DeleteBlock(block);
    block = prev;
  }
  if (Block* next = block->next; next != nullptr && next->state == BlockState::kFree) {
    if (first_fit && !indexed) {
      indexed = RemoveFreeBlockOfFirstFit(next, IndexedAt(next), /*successor=*/block);
    } else {
      RemoveFreeBlock(next);
    }
    block->size += next->size;
    block->next = next->next;
    if (next->next != nullptr) next->next->prev = block;
    DeleteBlock(next);
  }
  AddFree(block, indexed);
}

inline Block* BlockHeap::NewBlock() {
  if (spare_blocks_.empty()) return new Block();
  Block* block = spare_blocks_.back();
  spare_blocks_.pop_back();
  block->Reset();
  return block;
}

}  // namespace vramcache
