// Placement: which free block of the heap serves a request, and whether it is split. Best fit on
// the request's stream (the lowest block of at least the rounded size in the free set ordered by
// pool, stream, size and address); in virtual-memory mode first fit in the large pool (its
// choice does not depend on which pages are mapped, so a program that repeats its steps gets the
// same addresses every step) and, in the small pool, of the best fits the one whose pages need
// the fewest new chunks; PyTorch's max_split_size rules throughout. Functions of the heap and
// the request: it takes nothing out of the heap (the allocator does), makes no device call, and
// changes only the first-fit index's cached bound on a segment's largest free block and the
// heap's note of where a best fit was found (BlockHeap::NoteFound).
// Not thread-safe: called with the allocator's lock held.
#pragma once

#include <cstddef>

#include "allocator/core/block.h"
#include "allocator/core/block_heap.h"
#include "allocator/core/runtime_settings.h"

namespace vramcache {

class Placement {
 public:
  // `heap` and `settings` must outlive the placement; the split rules are read from `settings`
  // at every decision, so a runtime change applies to the next request. `virtual_memory`: the
  // heap's segments are arenas (first fit in the large pool, page scoring in the small one).
  Placement(BlockHeap* heap, const RuntimeSettings* settings, bool virtual_memory)
      : heap_(heap), settings_(settings), virtual_memory_(virtual_memory) {}

  // The free block cached for `stream` in `pool` that serves a request of `rounded` bytes: best
  // fit (first fit in virtual-memory mode's large pool); null when none fits.
  Block* FindFreeBlock(bool small, PoolId pool, StreamHandle stream, std::size_t rounded);
  // The best fit among the blocks cached for other streams in `pool` (the smallest fitting
  // block over every other stream); null when none fits. Making it safe is the caller's.
  Block* BestFitOnOtherStream(bool small, PoolId pool, StreamHandle stream, std::size_t rounded);

  // PyTorch's max_split_size rules: blocks of at least max_split_size bytes are oversize; they
  // serve only oversize requests, and only when not much larger than the request (less than
  // max_non_split_rounding over it).
  bool FitsSplitRules(const Block* block, std::size_t rounded) const {
    const std::size_t max_split_size = settings_->max_split_size;
    if (rounded < max_split_size && block->size >= max_split_size) return false;
    return rounded < max_split_size || block->size < rounded + settings_->max_non_split_rounding;
  }
  // Whether serving `rounded` bytes from `block` leaves a remainder worth a block of its own: in
  // the small pool one of at least kMinBlockSize; in the large pool more than a small request,
  // and never from an oversize request.
  bool ShouldSplit(const Block* block, std::size_t rounded) const;

 private:
  Block* FirstFitBlock(PoolId pool, StreamHandle stream, std::size_t rounded);

  BlockHeap* const heap_;
  const RuntimeSettings* const settings_;
  const bool virtual_memory_;
};

}  // namespace vramcache
