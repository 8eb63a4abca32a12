// PyTorch's roundup_power2_divisions, read and written: 16 intervals, [1 MiB, 2 MiB) (and every
// smaller size) up to [32 GiB, ...) (and every larger one), each with a number of divisions.
// AllocatorConfig keeps one entry per power of two (64 of them), or none for "off everywhere".
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "allocator/api/config_syntax.h"

namespace vramcache::config_values {

// PyTorch 2.11's reading of the value, step for step (AcceleratorAllocatorConfig::
// parseRoundUpPower2Divisions): a single number (a power of two) applies everywhere; in a list
// [MiB:divisions,...,>:divisions], the first bound also covers every smaller size, each later
// bound sets its own interval, and ">" every interval after the last bound given. Bounds are
// powers of two, divisions 0 or powers of two. A short reason otherwise.
absl::StatusOr<std::vector<std::size_t>> ReadDivisions(const ConfigEntry& entry);

// Back in PyTorch's form, "" when off: a single number when every interval agrees, else a list
// whose first bound also covers the intervals below it, explicit bounds for the middle, and ">"
// for the trailing run. ReadDivisions reads it back as `expanded`, for any value it produced.
std::string FormatDivisions(const std::vector<std::size_t>& expanded);

}  // namespace vramcache::config_values
