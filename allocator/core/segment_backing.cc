// The segment backing's books and snapshot (segment_backing.h).
#include "allocator/core/segment_backing.h"

#include <algorithm>
#include <utility>

#include "allocator/core/caching_allocator.h"

namespace vramcache {

CachedFree SegmentBacking::FreeMemory() const {
  CachedFree free;
  for (const FreeBlockSet* set : {small_free_, large_free_}) {
    for (const Block* b : *set) {
      free.bytes += b->size;
      free.largest_block = std::max(free.largest_block, b->size);
    }
  }
  return free;
}

// A segment is one device allocation: it appears whole, with every block.
void SegmentBacking::AppendSnapshot(const Segment& segment, std::vector<SegmentInfo>* out) const {
  SegmentInfo info{segment.base, segment.size, segment.stream, segment.small, {}};
  for (const Block* b = segment.head; b != nullptr; b = b->next) {
    info.blocks.push_back({b->addr, b->size, b->requested, b->state, b->pool_id});
  }
  out->push_back(std::move(info));
}

}  // namespace vramcache
