// What each configuration key does to the configuration being built: reads its value (through
// config_values.h) and sets its fields, or returns a short reason for a bad value. Also the
// choice lists of the enum-like keys, which the key table uses to parse and to print them.
#pragma once

#include <array>
#include <cstddef>
#include <string_view>

#include "absl/status/status.h"
#include "allocator/api/config_syntax.h"
#include "allocator/api/config_values.h"
#include "allocator/core/config.h"

namespace vramcache {

inline constexpr std::size_t kDefaultLargeSegmentSize = 20 * kMiB;  // PyTorch's kLargeBuffer

// The configuration while the variables are applied one after the other.
struct ConfigParseState {
  AllocatorConfig config;
  // PyTorch's large_segment_size_mb. AllocatorConfig has no field for it yet: it is validated
  // and sets the floor of the two *_mb split keys and the default of max_non_split_rounding_mb.
  std::size_t large_segment_size = kDefaultLargeSegmentSize;
  std::string_view large_segment_source;
  std::string_view max_split_source;      // where max_split_size_mb was set, if anywhere
  std::string_view max_non_split_source;  // where max_non_split_rounding_mb was set
  // Whether max_non_split_rounding was chosen (by a key, or by the caller's base config), so a
  // later large_segment_size_mb no longer moves it.
  bool max_non_split_fixed = false;
  bool pytorch_variable = false;  // reading PyTorch's variable: PyTorch's spellings
  std::string_view source;        // the variable being read, for messages
};

inline constexpr std::array<config_values::Choice<DeviceKind>, 3> kDeviceChoices = {{
    {"cuda", DeviceKind::kCuda},
    {"sim", DeviceKind::kSim},
    {"auto", DeviceKind::kAuto},
}};
// sim_backing: accounting (no bytes behind the addresses) or memory.
inline constexpr std::array<config_values::Choice<bool>, 2> kSimAccountingOnlyChoices = {{
    {"accounting", true},
    {"memory", false},
}};
inline constexpr std::array<config_values::Choice<VmmMode>, 3> kVmmChoices = {{
    {"on", VmmMode::kOn},
    {"off", VmmMode::kOff},
    {"auto", VmmMode::kAuto},
}};
inline constexpr std::array<config_values::Choice<CrossStreamPolicy>, 3> kCrossStreamChoices = {{
    {"none", CrossStreamPolicy::kNone},
    {"query", CrossStreamPolicy::kQuery},
    {"wait", CrossStreamPolicy::kWait},
}};

// A boolean in the variable's spelling into `field`.
absl::Status SetBool(const ConfigEntry& entry, const ConfigParseState& state, bool& field);
// Validated like the keys that do something, then dropped: see docs/tuning.md for why.
absl::Status ValidateBoolOnly(const ConfigEntry& entry, ConfigParseState& state);

// vramcache's keys.
absl::Status SetDevice(const ConfigEntry& entry, ConfigParseState& state);
absl::Status SetSimCapacity(const ConfigEntry& entry, ConfigParseState& state);
absl::Status SetSimGranularity(const ConfigEntry& entry, ConfigParseState& state);
absl::Status SetSimBacking(const ConfigEntry& entry, ConfigParseState& state);
absl::Status SetSimDevices(const ConfigEntry& entry, ConfigParseState& state);
absl::Status SetBudget(const ConfigEntry& entry, ConfigParseState& state);
absl::Status SetSoftBudget(const ConfigEntry& entry, ConfigParseState& state);
absl::Status SetVmm(const ConfigEntry& entry, ConfigParseState& state);
absl::Status SetCrossStream(const ConfigEntry& entry, ConfigParseState& state);
absl::Status SetHistoryCapacity(const ConfigEntry& entry, ConfigParseState& state);
absl::Status SetReuseCache(const ConfigEntry& entry, ConfigParseState& state);
// thread_cache: what one thread's front may cache (AllocatorConfig::thread_cache_bytes).
absl::Status SetThreadCache(const ConfigEntry& entry, ConfigParseState& state);

// PyTorch's keys.
absl::Status SetLargeSegmentSize(const ConfigEntry& entry, ConfigParseState& state);
absl::Status SetMaxSplitSize(const ConfigEntry& entry, ConfigParseState& state);
absl::Status SetMaxNonSplitRounding(const ConfigEntry& entry, ConfigParseState& state);
absl::Status SetGarbageCollectionThreshold(const ConfigEntry& entry, ConfigParseState& state);
absl::Status SetRoundupPower2Divisions(const ConfigEntry& entry, ConfigParseState& state);
absl::Status SetPerProcessMemoryFraction(const ConfigEntry& entry, ConfigParseState& state);
absl::Status SetBackend(const ConfigEntry& entry, ConfigParseState& state);
absl::Status ValidatePinnedNumRegisterThreads(const ConfigEntry& entry, ConfigParseState& state);
absl::Status ValidatePinnedReserveSegmentSize(const ConfigEntry& entry, ConfigParseState& state);

}  // namespace vramcache
