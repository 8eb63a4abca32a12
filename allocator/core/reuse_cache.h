// The reuse cache's lists: freed blocks kept whole, by the pool, stream and rounded size of the
// request they last served, so that the next such request takes one without a free-set search.
#pragma once

#include <cstddef>
#include <utility>

#include "allocator/core/block.h"

namespace vramcache {

// Key of a reuse-cache list: freed blocks that last served requests of `rounded` bytes.
struct ReuseKey {
  PoolId pool;
  StreamHandle stream;
  std::size_t rounded;
  bool operator==(const ReuseKey&) const = default;
  template <typename H>
  friend H AbslHashValue(H h, const ReuseKey& k) {
    return H::combine(std::move(h), k.pool, k.stream, k.rounded);
  }
};

}  // namespace vramcache
