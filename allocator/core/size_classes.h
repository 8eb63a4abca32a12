// Rounding of request sizes. Requests up to 1 MiB go to size classes (a table held as data and
// validated at start-up); larger ones are rounded to 512 bytes, or to PyTorch's
// roundup_power2_divisions when configured. Also decides how large a new segment is.
#pragma once

#include <cstddef>
#include <span>
#include <vector>

#include "absl/status/status.h"

namespace vramcache {

inline constexpr std::size_t kMinBlockSize = 512;            // every block is a multiple of this
inline constexpr std::size_t kSmallRequestLimit = 1u << 20;  // <= this: small pool
inline constexpr std::size_t kSmallSegmentSize = 2u << 20;   // segments of the small pool
inline constexpr std::size_t kMidRequestLimit = 10u << 20;   // (1, 10] MiB share 20 MiB segments
inline constexpr std::size_t kMidSegmentSize = 20u << 20;
inline constexpr std::size_t kLargeSegmentRounding = 2u << 20;
// No device has this much memory; larger requests are rejected up front as invalid rather than
// being rounded (which could overflow) and reported as an ordinary out-of-memory.
inline constexpr std::size_t kMaxRequestSize = std::size_t{1} << 48;

// The size classes, ascending. From 512 B to 4 KiB in 512-byte steps (absolute waste < 512 B),
// then 8 classes per power of two up to 1 MiB, so waste is below 12.5% from 4 KiB on.
std::span<const std::size_t> SmallSizeClasses();

// Checks a class table: ascending, multiples of kMinBlockSize, last == kSmallRequestLimit, and
// relative waste below `max_waste` for every request size >= 4 KiB.
absl::Status ValidateSizeClasses(std::span<const std::size_t> classes, double max_waste);

// Index of the smallest class >= size (size in [1, kSmallRequestLimit]). O(1).
std::size_t SizeClassIndex(std::size_t size);

class SizeRounder {
 public:
  // `power2_divisions[i]`: divisions for sizes in [2^i, 2^(i+1)); empty: plain 512-byte rounding.
  explicit SizeRounder(std::vector<std::size_t> power2_divisions = {});

  // Requires 0 < size <= kMaxRequestSize.
  std::size_t RoundRequest(std::size_t size) const;
  static bool IsSmall(std::size_t size) { return size <= kSmallRequestLimit; }
  // How many bytes to ask the device for when no cached block fits a rounded request.
  static std::size_t SegmentSizeFor(std::size_t rounded);

 private:
  std::vector<std::size_t> power2_divisions_;
};

}  // namespace vramcache
