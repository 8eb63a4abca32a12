// The allocator state as JSON in the layout of torch.cuda.memory._snapshot(), which PyTorch's
// memory_viz page reads (after the Python package pickles it).
#pragma once

#include <string>
#include <vector>

#include "allocator/core/caching_allocator.h"

namespace vramcache {

std::string SnapshotJson(const std::vector<CachingAllocator*>& allocators);

}  // namespace vramcache
