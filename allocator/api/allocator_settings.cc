// Reads a _set_allocator_settings string against the configuration in use (see
// allocator_settings.h).
#include "allocator/api/allocator_settings.h"

#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "allocator/api/config_parser.h"
#include "allocator/api/config_syntax.h"

namespace vramcache {
namespace {

std::string RuntimeKeyList() {
  std::string list;
  for (std::string_view key : kRuntimeSettingKeys) {
    if (!list.empty()) list += ", ";
    list += key;
  }
  return list;
}

}  // namespace

absl::StatusOr<RuntimeSettings> ParseRuntimeSettings(std::string_view text,
                                                     const AllocatorConfig& current) {
  absl::StatusOr<std::vector<ConfigEntry>> entries =
      SplitConfigText(kSetAllocatorSettingsSource, text);
  if (!entries.ok()) return entries.status();
  // The whole text first: its syntax, keys and values are checked as PyTorch's variable's are,
  // and the split keys against each other.
  absl::StatusOr<AllocatorConfig> updated =
      ParseConfigOnto(text, current, kSetAllocatorSettingsSource, /*pytorch_variable=*/true);
  if (!updated.ok()) return updated.status();
  // Then each key that may not change, on its own: accepted only when it changes nothing.
  for (const ConfigEntry& entry : *entries) {
    if (std::find(kRuntimeSettingKeys.begin(), kRuntimeSettingKeys.end(), entry.key) !=
        kRuntimeSettingKeys.end()) {
      continue;
    }
    absl::StatusOr<AllocatorConfig> alone =
        ParseConfigOnto(std::string(entry.key) + ":" + std::string(entry.text), current,
                        kSetAllocatorSettingsSource, /*pytorch_variable=*/true);
    if (alone.ok() && *alone == current) continue;
    return absl::FailedPreconditionError(absl::StrFormat(
        "vramcache: %s: \"%s\" cannot change once memory has been allocated (it decides how "
        "memory already handed out is laid out or watched); set it in PYTORCH_CUDA_ALLOC_CONF "
        "or VRAMCACHE_CONF before the first allocation. Keys that can change now: %s",
        std::string(kSetAllocatorSettingsSource), std::string(entry.key), RuntimeKeyList()));
  }
  return RuntimeSettings::Of(*updated);
}

}  // namespace vramcache
