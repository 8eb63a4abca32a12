// torch.cuda.memory._set_allocator_settings(text) for an allocator in use: reads PyTorch's
// syntax and keys onto the configuration in use and keeps what may change at run time
// (runtime_settings.h). A key that would change anything else is refused with a message that
// says where to set it; a key given with the value already in use changes nothing and is
// accepted, so a program may pass its whole settings string again.
#pragma once

#include <array>
#include <string_view>

#include "absl/status/statusor.h"
#include "allocator/core/config.h"
#include "allocator/core/runtime_settings.h"

namespace vramcache {

// The name errors give the text.
inline constexpr std::string_view kSetAllocatorSettingsSource = "_set_allocator_settings";

// PyTorch's keys that may change once memory is handed out, as named in its variable.
inline constexpr std::array<std::string_view, 4> kRuntimeSettingKeys = {
    "max_split_size_mb", "max_non_split_rounding_mb", "roundup_power2_divisions",
    "garbage_collection_threshold"};

// The settings `text` makes on top of `current`. InvalidArgument for malformed text or a bad
// value (as for PYTORCH_CUDA_ALLOC_CONF); FailedPrecondition naming the first key that would
// change a setting fixed after the first allocation.
absl::StatusOr<RuntimeSettings> ParseRuntimeSettings(std::string_view text,
                                                     const AllocatorConfig& current);

}  // namespace vramcache
