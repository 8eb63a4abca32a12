// The settings that may change while the allocator is in use, as PyTorch's
// torch.cuda.memory._set_allocator_settings() changes them: each is read at the moment of the
// decision it governs (how to round a request, whether to split a block, when to give cached
// memory back) and is never baked into memory already handed out, so a change applies to the
// next decision and leaves every block, segment and statistic as it is. Every other setting
// decides how memory already handed out is laid out or watched, and is fixed at construction.
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

// The soft cap on reserved bytes: soft_budget, else soft_budget_fraction of the device, else
// PyTorch's garbage_collection_threshold as a fraction of what may be reserved (`budget` when
// there is one, else the device's `total_bytes`); 0 for none.
inline std::size_t SoftBudgetBytes(const AllocatorConfig& config,
                                   double garbage_collection_threshold, std::size_t budget,
                                   std::size_t total_bytes) {
  if (config.soft_budget_bytes.has_value()) return *config.soft_budget_bytes;
  const double total = static_cast<double>(total_bytes);
  if (config.soft_budget_fraction.has_value()) {
    return static_cast<std::size_t>(*config.soft_budget_fraction * total);
  }
  if (garbage_collection_threshold <= 0.0) return 0;
  // PyTorch reclaims cached blocks once usage passes this fraction of what it may use.
  const double limit = budget > 0 ? static_cast<double>(budget) : total;
  return static_cast<std::size_t>(garbage_collection_threshold * limit);
}

}  // namespace vramcache
