// Reads and writes PyTorch's roundup_power2_divisions (see config_divisions.h).
#include "allocator/api/config_divisions.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>
#include <optional>

#include "absl/strings/str_format.h"
#include "allocator/api/config_values.h"

namespace vramcache::config_values {
namespace {

constexpr std::size_t kPytorchIntervals = 16;
constexpr int kFirstIntervalLog2 = 20;  // 1 MiB
using PytorchDivisions = std::array<std::uint64_t, kPytorchIntervals>;

std::vector<std::size_t> ExpandDivisions(const PytorchDivisions& divisions) {
  if (std::all_of(divisions.begin(), divisions.end(), [](std::uint64_t d) { return d == 0; })) {
    return {};  // the config's "off everywhere"
  }
  std::vector<std::size_t> expanded(64);
  for (int log2 = 0; log2 < 64; ++log2) {
    const int interval =
        std::clamp(log2 - kFirstIntervalLog2, 0, static_cast<int>(kPytorchIntervals) - 1);
    expanded[log2] = static_cast<std::size_t>(divisions[interval]);
  }
  return expanded;
}

bool IsPowerOfTwo(std::uint64_t value) { return std::has_single_bit(value); }

}  // namespace

absl::StatusOr<std::vector<std::size_t>> ReadDivisions(const ConfigEntry& entry) {
  PytorchDivisions divisions{};
  if (!entry.is_list) {
    const std::optional<std::uint64_t> value = ReadUnsigned(entry.scalar);
    if (!value.has_value() || !IsPowerOfTwo(*value)) {
      return BadValue("a single number of divisions must be a power of two");
    }
    divisions.fill(*value);
    return ExpandDivisions(divisions);
  }
  bool first = true;
  std::size_t last_index = 0;
  for (const ConfigListItem& item : entry.items) {
    const std::optional<std::uint64_t> value = ReadUnsigned(item.value);
    if (!value.has_value() || (*value != 0 && !IsPowerOfTwo(*value))) {
      return BadValue(absl::StrFormat("divisions \"%s\" (for \"%s\") must be 0 or a power of two",
                                      item.value, item.key));
    }
    if (item.key == ">") {
      std::fill(divisions.begin() + std::min(last_index + 1, kPytorchIntervals), divisions.end(),
                *value);
      continue;
    }
    const std::optional<std::uint64_t> bound_mb = ReadUnsigned(item.key);
    if (!bound_mb.has_value() || !IsPowerOfTwo(*bound_mb)) {
      return BadValue(
          absl::StrFormat("bound \"%s\" must be a power-of-two number of MiB, or >", item.key));
    }
    const std::size_t index =
        std::min<std::size_t>(std::countr_zero(*bound_mb), kPytorchIntervals - 1);
    if (first) {
      std::fill(divisions.begin(), divisions.begin() + index, *value);
      first = false;
    }
    divisions[index] = *value;
    last_index = index;
  }
  return ExpandDivisions(divisions);
}

std::string FormatDivisions(const std::vector<std::size_t>& expanded) {
  PytorchDivisions divisions{};
  for (std::size_t i = 0; i < kPytorchIntervals; ++i) {
    const std::size_t log2 = kFirstIntervalLog2 + i;
    divisions[i] = log2 < expanded.size() ? expanded[log2] : 0;
  }
  const auto bound = [](std::size_t index) { return std::uint64_t{1} << index; };
  std::size_t prefix_end = 1;  // divisions[0, prefix_end) equal divisions[0]
  while (prefix_end < kPytorchIntervals && divisions[prefix_end] == divisions[0]) ++prefix_end;
  if (prefix_end == kPytorchIntervals) {
    if (divisions[0] == 0) return "";
    if (IsPowerOfTwo(divisions[0])) return absl::StrFormat("%d", divisions[0]);
    return absl::StrFormat("[%d:%d]", bound(kPytorchIntervals - 1), divisions[0]);
  }
  std::size_t suffix_start = kPytorchIntervals - 1;  // divisions[suffix_start, 16) are equal
  while (suffix_start > prefix_end && divisions[suffix_start - 1] == divisions.back()) {
    --suffix_start;
  }
  std::string list = absl::StrFormat("[%d:%d", bound(prefix_end - 1), divisions[0]);
  for (std::size_t i = prefix_end; i < suffix_start; ++i) {
    list += absl::StrFormat(",%d:%d", bound(i), divisions[i]);
  }
  return list + absl::StrFormat(",>:%d]", divisions.back());
}

}  // namespace vramcache::config_values
