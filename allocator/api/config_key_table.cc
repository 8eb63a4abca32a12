// The key table and what is driven by it: applying an entry, the unknown-key message and the
// description (see config_key_table.h).
#include "allocator/api/config_key_table.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "allocator/api/config_divisions.h"
#include "allocator/api/config_parser.h"
#include "allocator/api/config_suggestions.h"
#include "allocator/api/config_values.h"

namespace vramcache {
namespace {

using config_values::BadValue;
using config_values::BoolText;
using config_values::ChoiceList;
using config_values::ChoiceText;
using config_values::FormatNumber;
using config_values::FormatSize;
using config_values::FormatSizeOrFraction;
using Described = std::optional<std::string>;

constexpr std::string_view kSizeAllowed =
    "a size > 0: bytes, or a number with a unit (B, K/KB/KiB, M/MB/MiB, G/GB/GiB, T/TB/TiB, all "
    "binary), e.g. 24GiB, 1.5GiB, 4096";
constexpr std::string_view kBudgetAllowed =
    "a size > 0 (bytes, or a number with a unit: B, K/KB/KiB, M/MB/MiB, G/GB/GiB, T/TB/TiB, all "
    "binary, e.g. 20GiB), a fraction of the device's memory in (0, 1] written as a decimal (0.5, "
    "1.0), or none";
constexpr std::string_view kVramcacheBoolAllowed = "true/false, on/off, yes/no or 1/0 (any case)";
constexpr std::string_view kPytorchBoolAllowed = "True or False (PyTorch's spelling)";
constexpr std::string_view kSplitMbAllowed =
    "a whole number of MiB >= large_segment_size_mb (20 unless set)";

// The settings a PyTorch key prints only when they differ from PyTorch's defaults.
const AllocatorConfig& Defaults() {
  static const AllocatorConfig* const defaults = new AllocatorConfig();
  return *defaults;
}

Described Mb(std::size_t bytes) { return absl::StrFormat("%d", bytes / kMiB); }

// A vramcache boolean key: its setter and its printed value, from the field alone.
template <bool AllocatorConfig::*Field>
absl::Status SetBoolField(const ConfigEntry& entry, ConfigParseState& state) {
  return SetBool(entry, state, state.config.*Field);
}
template <bool AllocatorConfig::*Field>
Described DescribeBool(const AllocatorConfig& config) {
  return std::string(BoolText(config.*Field, /*pytorch_spelling=*/false));
}
// A PyTorch boolean key: printed in PyTorch's spelling, only when not PyTorch's default.
template <bool AllocatorConfig::*Field>
Described DescribePytorchBool(const AllocatorConfig& config) {
  if (config.*Field == Defaults().*Field) return std::nullopt;
  return std::string(BoolText(config.*Field, /*pytorch_spelling=*/true));
}

std::vector<ConfigKey> MakeKeys() {
  using K = ConfigKeyHome;
  return {
      {"device", K::kVramcache, false, false, ChoiceList(kDeviceChoices), SetDevice,
       [](const AllocatorConfig& c) -> Described {
         return std::string(ChoiceText(c.device, kDeviceChoices));
       },
       1},
      {"sim_capacity", K::kVramcache, false, false, std::string(kSizeAllowed), SetSimCapacity,
       [](const AllocatorConfig& c) -> Described { return FormatSize(c.sim_capacity); }, 2},
      {"sim_granularity", K::kVramcache, false, false,
       "a power-of-two size of at least 4KiB, e.g. 2MiB", SetSimGranularity,
       [](const AllocatorConfig& c) -> Described { return FormatSize(c.sim_granularity); }, 3},
      {"sim_backing", K::kVramcache, false, false, ChoiceList(kSimAccountingOnlyChoices),
       SetSimBacking,
       [](const AllocatorConfig& c) -> Described {
         return std::string(ChoiceText(c.sim_accounting_only, kSimAccountingOnlyChoices));
       },
       4},
      {"sim_devices", K::kVramcache, false, false, "a whole number from 1 to 16", SetSimDevices,
       [](const AllocatorConfig& c) -> Described { return absl::StrCat(c.sim_devices); }, 5},
      {"budget", K::kVramcache, false, false, std::string(kBudgetAllowed), SetBudget,
       [](const AllocatorConfig& c) -> Described {
         return FormatSizeOrFraction(c.budget_bytes, c.per_process_memory_fraction);
       },
       6},
      {"soft_budget", K::kVramcache, false, false, std::string(kBudgetAllowed), SetSoftBudget,
       [](const AllocatorConfig& c) -> Described {
         return FormatSizeOrFraction(c.soft_budget_bytes, c.soft_budget_fraction);
       },
       7},
      {"vmm", K::kVramcache, false, false, ChoiceList(kVmmChoices), SetVmm,
       [](const AllocatorConfig& c) -> Described {
         return std::string(ChoiceText(c.vmm, kVmmChoices));
       },
       8},
      {"cross_stream", K::kVramcache, false, false, ChoiceList(kCrossStreamChoices), SetCrossStream,
       [](const AllocatorConfig& c) -> Described {
         return std::string(ChoiceText(c.cross_stream, kCrossStreamChoices));
       },
       9},
      {"poison_on_free", K::kVramcache, true, false, std::string(kVramcacheBoolAllowed),
       SetBoolField<&AllocatorConfig::poison_on_free>,
       DescribeBool<&AllocatorConfig::poison_on_free>, 10},
      {"canaries", K::kVramcache, true, false, std::string(kVramcacheBoolAllowed),
       SetBoolField<&AllocatorConfig::canaries>, DescribeBool<&AllocatorConfig::canaries>, 11},
      {"unmap_on_free", K::kVramcache, true, false, std::string(kVramcacheBoolAllowed),
       SetBoolField<&AllocatorConfig::unmap_on_free>, DescribeBool<&AllocatorConfig::unmap_on_free>,
       12},
      {"zero_on_alloc", K::kVramcache, true, false, std::string(kVramcacheBoolAllowed),
       SetBoolField<&AllocatorConfig::zero_on_alloc>, DescribeBool<&AllocatorConfig::zero_on_alloc>,
       13},
      {"record_history", K::kVramcache, true, false, std::string(kVramcacheBoolAllowed),
       SetBoolField<&AllocatorConfig::record_history>,
       DescribeBool<&AllocatorConfig::record_history>, 14},
      {"history_capacity", K::kVramcache, false, false, "a whole number >= 1", SetHistoryCapacity,
       [](const AllocatorConfig& c) -> Described { return absl::StrCat(c.history_capacity); }, 15},
      {"reuse_cache", K::kVramcache, false, false, "a size (0 turns the reuse cache off)",
       SetReuseCache,
       [](const AllocatorConfig& c) -> Described {
         if (!c.reuse_cache_bytes.has_value()) return std::nullopt;  // the mode's default
         return FormatSize(*c.reuse_cache_bytes);
       },
       17},
      {"thread_cache", K::kVramcache, false, false, "a size (0 turns the per-thread caches off)",
       SetThreadCache,
       [](const AllocatorConfig& c) -> Described {
         if (c.thread_cache_bytes == kDefaultThreadCacheBytes) return std::nullopt;
         return FormatSize(c.thread_cache_bytes);
       },
       28},
      // Printed only when off, so that every configuration's description stays as it was.
      {"caching", K::kVramcache, true, false, std::string(kVramcacheBoolAllowed),
       SetBoolField<&AllocatorConfig::caching>,
       [](const AllocatorConfig& c) -> Described {
         if (c.caching) return std::nullopt;
         return std::string(BoolText(false, /*pytorch_spelling=*/false));
       },
       27},
      {"check_invariants", K::kVramcache, true, false, std::string(kVramcacheBoolAllowed),
       SetBoolField<&AllocatorConfig::check_invariants>,
       DescribeBool<&AllocatorConfig::check_invariants>, 16},
      // PyTorch 2.11's keys: AcceleratorAllocatorConfig's, then CUDAAllocatorConfig's.
      {"large_segment_size_mb", K::kPytorch, false, false, "a whole number of MiB above 10",
       SetLargeSegmentSize, nullptr, 0},
      {"max_split_size_mb", K::kPytorch, false, false, std::string(kSplitMbAllowed),
       SetMaxSplitSize,
       [](const AllocatorConfig& c) -> Described {
         if (c.max_split_size == Defaults().max_split_size) return std::nullopt;
         return Mb(c.max_split_size);
       },
       18},
      {"max_non_split_rounding_mb", K::kPytorch, false, false, std::string(kSplitMbAllowed),
       SetMaxNonSplitRounding,
       [](const AllocatorConfig& c) -> Described {
         if (c.max_non_split_rounding == Defaults().max_non_split_rounding) return std::nullopt;
         return Mb(c.max_non_split_rounding);
       },
       19},
      {"garbage_collection_threshold", K::kPytorch, false, false, "a number in (0, 1), e.g. 0.8",
       SetGarbageCollectionThreshold,
       [](const AllocatorConfig& c) -> Described {
         if (c.garbage_collection_threshold == Defaults().garbage_collection_threshold) {
           return std::nullopt;
         }
         return FormatNumber(c.garbage_collection_threshold);
       },
       21},
      {"roundup_power2_divisions", K::kPytorch, false, true,
       "a power of two (e.g. 4), or a list [MiB:divisions,...,>:divisions] (e.g. "
       "[256:1,512:2,1024:4,>:8]) with each MiB bound a power of two and each divisions 0 or a "
       "power of two",
       SetRoundupPower2Divisions,
       [](const AllocatorConfig& c) -> Described {
         std::string divisions = config_values::FormatDivisions(c.roundup_power2_divisions);
         if (divisions.empty()) return std::nullopt;  // off
         return divisions;
       },
       20},
      {"expandable_segments", K::kPytorch, true, false, std::string(kVramcacheBoolAllowed),
       SetBoolField<&AllocatorConfig::expandable_segments>,
       DescribePytorchBool<&AllocatorConfig::expandable_segments>, 22},
      {"pinned_use_background_threads", K::kPytorch, true, false,
       std::string(kVramcacheBoolAllowed), ValidateBoolOnly, nullptr, 0},
      {"backend", K::kPytorch, false, false, "native or cudaMallocAsync", SetBackend,
       [](const AllocatorConfig& c) -> Described {
         if (c.backend == Defaults().backend) return std::nullopt;
         return c.backend;
       },
       26},
      {"release_lock_on_cudamalloc", K::kPytorch, true, false, std::string(kVramcacheBoolAllowed),
       SetBoolField<&AllocatorConfig::release_lock_on_cudamalloc>,
       DescribePytorchBool<&AllocatorConfig::release_lock_on_cudamalloc>, 24},
      {"release_lock_on_hipmalloc", K::kPytorch, true, false, std::string(kVramcacheBoolAllowed),
       SetBoolField<&AllocatorConfig::release_lock_on_cudamalloc>, nullptr, 0},
      {"pinned_use_cuda_host_register", K::kPytorch, true, false,
       std::string(kVramcacheBoolAllowed), ValidateBoolOnly, nullptr, 0},
      {"pinned_use_hip_host_register", K::kPytorch, true, false, std::string(kVramcacheBoolAllowed),
       ValidateBoolOnly, nullptr, 0},
      {"graph_capture_record_stream_reuse", K::kPytorch, true, false,
       std::string(kVramcacheBoolAllowed),
       SetBoolField<&AllocatorConfig::graph_capture_record_stream_reuse>,
       DescribePytorchBool<&AllocatorConfig::graph_capture_record_stream_reuse>, 25},
      {"pinned_reserve_segment_size_mb", K::kPytorch, false, false, "a whole number of MiB > 0",
       ValidatePinnedReserveSegmentSize, nullptr, 0},
      {"pinned_num_register_threads", K::kPytorch, false, false, "a power of two <= 128",
       ValidatePinnedNumRegisterThreads, nullptr, 0},
      {"per_process_memory_fraction", K::kPytorch, false, false, "a number in [0, 1]",
       SetPerProcessMemoryFraction,
       [](const AllocatorConfig& c) -> Described {
         // budget: shows the byte cap when both are set, and cannot show a fraction of 0.
         if (!c.per_process_memory_fraction.has_value() ||
             (!c.budget_bytes.has_value() && *c.per_process_memory_fraction != 0.0)) {
           return std::nullopt;
         }
         return FormatNumber(*c.per_process_memory_fraction);
       },
       23},
  };
}

bool Accepts(const ConfigParseState& state, const ConfigKey& key) {
  return !state.pytorch_variable || key.home == ConfigKeyHome::kPytorch;
}

std::string KeyList(const ConfigParseState& state, ConfigKeyHome home) {
  std::string list;
  for (const ConfigKey& key : ConfigKeyTable()) {
    if (key.home != home || !Accepts(state, key)) continue;
    if (!list.empty()) list += ", ";
    list += key.name;
  }
  return list;
}

std::string ValidKeys(const ConfigParseState& state) {
  if (state.pytorch_variable) {
    return absl::StrFormat("valid keys (PyTorch 2.11's): %s",
                           KeyList(state, ConfigKeyHome::kPytorch));
  }
  return absl::StrFormat("valid keys: vramcache's %s; PyTorch's %s",
                         KeyList(state, ConfigKeyHome::kVramcache),
                         KeyList(state, ConfigKeyHome::kPytorch));
}

absl::Status UnknownKey(const ConfigParseState& state, const ConfigEntry& entry) {
  if (FindConfigKey(entry.key) != nullptr) {
    // Known, but vramcache's own in PyTorch's variable: PyTorch itself would reject it.
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: key \"%s\" (value %s) is vramcache's own, not PyTorch's: set it in %s. %s",
        state.source, entry.key, QuotedForMessage(entry.text), kVramcacheConfVariable,
        ValidKeys(state)));
  }
  std::vector<std::string_view> accepted;
  for (const ConfigKey& key : ConfigKeyTable()) {
    if (Accepts(state, key)) accepted.push_back(key.name);
  }
  // "...; did you mean "x"? valid keys: ..." or "...; valid keys: ...".
  std::string suggestion = ";";
  if (std::optional<std::string_view> closest = ClosestName(entry.key, accepted); closest) {
    suggestion = absl::StrFormat("; did you mean \"%s\"?", *closest);
  }
  return absl::InvalidArgumentError(
      absl::StrFormat("%s: unknown key \"%s\" (value %s)%s %s", state.source, entry.key,
                      QuotedForMessage(entry.text), suggestion, ValidKeys(state)));
}

}  // namespace

std::span<const ConfigKey> ConfigKeyTable() {
  static const std::vector<ConfigKey>* const keys = new std::vector<ConfigKey>(MakeKeys());
  return *keys;
}

const ConfigKey* FindConfigKey(std::string_view name) {
  for (const ConfigKey& key : ConfigKeyTable()) {
    if (key.name == name) return &key;
  }
  return nullptr;
}

absl::Status ApplyConfigEntry(const ConfigEntry& entry, ConfigParseState& state) {
  const ConfigKey* key = FindConfigKey(entry.key);
  if (key == nullptr || !Accepts(state, *key)) return UnknownKey(state, entry);
  const std::string_view allowed =
      key->is_bool && state.pytorch_variable ? kPytorchBoolAllowed : key->allowed;
  absl::Status status = absl::OkStatus();
  if (entry.is_list && !key->takes_list) {
    status = BadValue("a list, but the key takes a single value");
  } else {
    status = key->set(entry, state);
  }
  if (status.ok()) return status;
  return absl::InvalidArgumentError(
      absl::StrFormat("%s: bad value %s for key \"%s\": %s; allowed: %s", state.source,
                      QuotedForMessage(entry.text), entry.key, status.message(), allowed));
}

std::string DescribeConfigKeys(const AllocatorConfig& config) {
  std::vector<std::pair<int, std::string>> parts;
  for (const ConfigKey& key : ConfigKeyTable()) {
    if (key.describe == nullptr) continue;
    if (Described value = key.describe(config); value.has_value()) {
      parts.emplace_back(key.describe_position, std::string(key.name) + ":" + *value);
    }
  }
  std::sort(parts.begin(), parts.end());
  std::string line;
  for (const auto& [position, part] : parts) {
    if (!line.empty()) line += ",";
    line += part;
  }
  return line;
}

}  // namespace vramcache
