// The segment backing's books (segment_backing.h).
#include "allocator/core/segment_backing.h"

#include <algorithm>

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

}  // namespace vramcache
