// The setters of the configuration keys (see config_key_setters.h).
#include "allocator/api/config_key_setters.h"

#include <algorithm>
#include <bit>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_format.h"
#include "allocator/api/config_divisions.h"

namespace vramcache {
namespace {

using config_values::BadValue;
using config_values::Lower;
using config_values::ReadBool;
using config_values::ReadNumber;
using config_values::ReadSize;
using config_values::ReadSizeOrFraction;
using config_values::ReadUnsigned;
using config_values::SizeOrFraction;

constexpr std::size_t kMinLargeSegmentSizeMb = 10;  // must be above (kMinLargeAlloc)
constexpr std::size_t kMinSimGranularity = 4 * kKiB;
// Enough for the cross-device cases tests need (8-GPU nodes and more); each simulated device
// costs a little host memory even in accounting mode.
constexpr std::uint64_t kMaxSimDevices = 16;
constexpr std::uint64_t kMaxPinnedRegisterThreads = 128;

bool IsPowerOfTwo(std::uint64_t value) { return std::has_single_bit(value); }

template <typename Value, std::size_t N>
absl::Status SetChoice(const ConfigEntry& entry,
                       const std::array<config_values::Choice<Value>, N>& choices, Value& field) {
  const std::optional<Value> value = config_values::ReadChoice(entry.scalar, choices);
  if (!value.has_value()) return BadValue("not one of the choices");
  field = *value;
  return absl::OkStatus();
}

// PyTorch's *_mb split keys: a whole number of MiB, at least the large-segment size, clamped so
// the bytes fit (as PyTorch clamps).
absl::Status ReadSplitMb(const ConfigEntry& entry, const ConfigParseState& state,
                         std::size_t& field) {
  const std::optional<std::uint64_t> mb = ReadUnsigned(entry.scalar);
  if (!mb.has_value()) return BadValue("not a whole number of MiB");
  const std::size_t floor_mb = state.large_segment_size / kMiB;
  if (*mb < floor_mb) {
    return BadValue(absl::StrFormat("below %d (large_segment_size_mb)", floor_mb));
  }
  field = static_cast<std::size_t>(
              std::min<std::uint64_t>(*mb, std::numeric_limits<std::size_t>::max() / kMiB)) *
          kMiB;
  return absl::OkStatus();
}

}  // namespace

absl::Status SetBool(const ConfigEntry& entry, const ConfigParseState& state, bool& field) {
  const std::optional<bool> value = ReadBool(entry.scalar, state.pytorch_variable);
  if (!value.has_value()) return BadValue("not a boolean");
  field = *value;
  return absl::OkStatus();
}

absl::Status ValidateBoolOnly(const ConfigEntry& entry, ConfigParseState& state) {
  bool ignored = false;
  return SetBool(entry, state, ignored);
}

absl::Status SetDevice(const ConfigEntry& entry, ConfigParseState& state) {
  return SetChoice(entry, kDeviceChoices, state.config.device);
}

absl::Status SetSimCapacity(const ConfigEntry& entry, ConfigParseState& state) {
  absl::StatusOr<std::size_t> bytes = ReadSize(entry.scalar);
  if (!bytes.ok()) return bytes.status();
  if (*bytes == 0) return BadValue("0 bytes");
  state.config.sim_capacity = *bytes;
  return absl::OkStatus();
}

absl::Status SetReuseCache(const ConfigEntry& entry, ConfigParseState& state) {
  absl::StatusOr<std::size_t> bytes = ReadSize(entry.scalar);
  if (!bytes.ok()) return bytes.status();
  state.config.reuse_cache_bytes = *bytes;
  return absl::OkStatus();
}

absl::Status SetThreadCache(const ConfigEntry& entry, ConfigParseState& state) {
  absl::StatusOr<std::size_t> bytes = ReadSize(entry.scalar);
  if (!bytes.ok()) return bytes.status();
  state.config.thread_cache_bytes = *bytes;
  return absl::OkStatus();
}

absl::Status SetSimGranularity(const ConfigEntry& entry, ConfigParseState& state) {
  absl::StatusOr<std::size_t> bytes = ReadSize(entry.scalar);
  if (!bytes.ok()) return bytes.status();
  if (!IsPowerOfTwo(*bytes) || *bytes < kMinSimGranularity) {
    return BadValue("not a power of two of at least 4KiB");
  }
  state.config.sim_granularity = *bytes;
  return absl::OkStatus();
}

absl::Status SetSimDevices(const ConfigEntry& entry, ConfigParseState& state) {
  const std::optional<std::uint64_t> count = ReadUnsigned(entry.scalar);
  if (!count.has_value() || *count == 0 || *count > kMaxSimDevices) {
    return BadValue(absl::StrFormat("not a whole number from 1 to %d", kMaxSimDevices));
  }
  state.config.sim_devices = static_cast<int>(*count);
  return absl::OkStatus();
}

absl::Status SetSimBacking(const ConfigEntry& entry, ConfigParseState& state) {
  return SetChoice(entry, kSimAccountingOnlyChoices, state.config.sim_accounting_only);
}

// budget:<bytes> and per_process_memory_fraction are separate caps and both apply (the core
// takes the smaller); budget:<fraction> is per_process_memory_fraction; none lifts both.
absl::Status SetBudget(const ConfigEntry& entry, ConfigParseState& state) {
  if (Lower(entry.scalar) == "none") {
    state.config.budget_bytes.reset();
    state.config.per_process_memory_fraction.reset();
    return absl::OkStatus();
  }
  absl::StatusOr<SizeOrFraction> value = ReadSizeOrFraction(entry.scalar);
  if (!value.ok()) return value.status();
  if (value->bytes.has_value()) state.config.budget_bytes = value->bytes;
  if (value->fraction.has_value()) state.config.per_process_memory_fraction = value->fraction;
  return absl::OkStatus();
}

// One soft cap, in bytes or as a fraction: setting one form clears the other.
absl::Status SetSoftBudget(const ConfigEntry& entry, ConfigParseState& state) {
  SizeOrFraction value;
  if (Lower(entry.scalar) != "none") {
    absl::StatusOr<SizeOrFraction> read = ReadSizeOrFraction(entry.scalar);
    if (!read.ok()) return read.status();
    value = *read;
  }
  state.config.soft_budget_bytes = value.bytes;
  state.config.soft_budget_fraction = value.fraction;
  return absl::OkStatus();
}

absl::Status SetVmm(const ConfigEntry& entry, ConfigParseState& state) {
  return SetChoice(entry, kVmmChoices, state.config.vmm);
}

absl::Status SetCrossStream(const ConfigEntry& entry, ConfigParseState& state) {
  return SetChoice(entry, kCrossStreamChoices, state.config.cross_stream);
}

absl::Status SetHistoryCapacity(const ConfigEntry& entry, ConfigParseState& state) {
  const std::optional<std::uint64_t> count = ReadUnsigned(entry.scalar);
  if (!count.has_value() || *count == 0 || *count > std::numeric_limits<std::size_t>::max()) {
    return BadValue("not a whole number >= 1");
  }
  state.config.history_capacity = static_cast<std::size_t>(*count);
  return absl::OkStatus();
}

// Read in a first pass over each variable, before the keys whose floor it sets (as PyTorch does).
absl::Status SetLargeSegmentSize(const ConfigEntry& entry, ConfigParseState& state) {
  const std::optional<std::uint64_t> mb = ReadUnsigned(entry.scalar);
  if (!mb.has_value()) return BadValue("not a whole number of MiB");
  if (*mb <= kMinLargeSegmentSizeMb) return BadValue("not above 10");
  const std::size_t bytes = static_cast<std::size_t>(std::min<std::uint64_t>(
                                *mb, std::numeric_limits<std::size_t>::max() / kMiB)) *
                            kMiB;
  state.large_segment_size = bytes;
  state.large_segment_source = state.source;
  if (!state.max_non_split_fixed) state.config.max_non_split_rounding = bytes;
  return absl::OkStatus();
}

absl::Status SetMaxSplitSize(const ConfigEntry& entry, ConfigParseState& state) {
  if (absl::Status s = ReadSplitMb(entry, state, state.config.max_split_size); !s.ok()) return s;
  state.max_split_source = state.source;
  return absl::OkStatus();
}

absl::Status SetMaxNonSplitRounding(const ConfigEntry& entry, ConfigParseState& state) {
  if (absl::Status s = ReadSplitMb(entry, state, state.config.max_non_split_rounding); !s.ok()) {
    return s;
  }
  state.max_non_split_source = state.source;
  state.max_non_split_fixed = true;
  return absl::OkStatus();
}

absl::Status SetGarbageCollectionThreshold(const ConfigEntry& entry, ConfigParseState& state) {
  const std::optional<double> value = ReadNumber(entry.scalar);
  if (!value.has_value() || !(*value > 0.0 && *value < 1.0)) return BadValue("not in (0, 1)");
  state.config.garbage_collection_threshold = *value;
  return absl::OkStatus();
}

absl::Status SetRoundupPower2Divisions(const ConfigEntry& entry, ConfigParseState& state) {
  absl::StatusOr<std::vector<std::size_t>> divisions = config_values::ReadDivisions(entry);
  if (!divisions.ok()) return divisions.status();
  state.config.roundup_power2_divisions = std::move(*divisions);
  return absl::OkStatus();
}

absl::Status SetPerProcessMemoryFraction(const ConfigEntry& entry, ConfigParseState& state) {
  const std::optional<double> value = ReadNumber(entry.scalar);
  if (!value.has_value() || !(*value >= 0.0 && *value <= 1.0)) return BadValue("not in [0, 1]");
  state.config.per_process_memory_fraction = *value;
  return absl::OkStatus();
}

absl::Status SetBackend(const ConfigEntry& entry, ConfigParseState& state) {
  // PyTorch compares case-sensitively; hipMallocAsync exists only in ROCm builds.
  if (entry.scalar != "native" && entry.scalar != "cudaMallocAsync") {
    return BadValue("not a backend of CUDA builds");
  }
  state.config.backend = std::string(entry.scalar);
  return absl::OkStatus();
}

absl::Status ValidatePinnedNumRegisterThreads(const ConfigEntry& entry, ConfigParseState&) {
  const std::optional<std::uint64_t> value = ReadUnsigned(entry.scalar);
  if (!value.has_value() || !IsPowerOfTwo(*value) || *value > kMaxPinnedRegisterThreads) {
    return BadValue("not a power of two <= 128");
  }
  return absl::OkStatus();
}

absl::Status ValidatePinnedReserveSegmentSize(const ConfigEntry& entry, ConfigParseState&) {
  const std::optional<std::uint64_t> value = ReadUnsigned(entry.scalar);
  if (!value.has_value() || *value == 0) return BadValue("not a whole number of MiB > 0");
  return absl::OkStatus();
}

}  // namespace vramcache
