// The settings that may change while the allocator is in use, as PyTorch's
// torch.cuda.memory._set_allocator_settings() changes them: each is read at the moment of the
// decision it governs (how to round a request, whether to split a block, when to give cached
// memory back) and is never baked into memory already handed out, so a change applies to the
// next decision and leaves every block, segment and statistic as it is. Every other setting
// decides how memory already handed out is laid out or watched, and is fixed at construction.
// (The soft cap that garbage_collection_threshold sets is GrowthLimits'.)
#pragma once

#include <cstddef>
#include <vector>

#include "allocator/core/config.h"

namespace vramcache {

struct RuntimeSettings {
  std::size_t max_split_size = 0;
  std::size_t max_non_split_rounding = 0;
  std::vector<std::size_t> roundup_power2_divisions;
  double garbage_collection_threshold = 0.0;

  static RuntimeSettings Of(const AllocatorConfig& config) {
    return {config.max_split_size, config.max_non_split_rounding, config.roundup_power2_divisions,
            config.garbage_collection_threshold};
  }
  // `config` with these settings in place of its own.
  void ApplyTo(AllocatorConfig& config) const {
    config.max_split_size = max_split_size;
    config.max_non_split_rounding = max_non_split_rounding;
    config.roundup_power2_divisions = roundup_power2_divisions;
    config.garbage_collection_threshold = garbage_collection_threshold;
  }
  bool operator==(const RuntimeSettings&) const = default;
};

}  // namespace vramcache
