// Size-class table, its validator, and the rounding rules for large requests.
#include "allocator/core/size_classes.h"

#include <array>
#include <bit>

#include "absl/strings/str_format.h"

namespace vramcache {
namespace {

constexpr std::size_t kLinearLimit = 4096;  // 512-byte steps up to here
constexpr int kClassesPerDoubling = 8;

constexpr std::size_t kNumSmallClasses =
    kLinearLimit / kMinBlockSize + kClassesPerDoubling * (20 - 12);  // 8 + 64

constexpr std::array<std::size_t, kNumSmallClasses> BuildClasses() {
  std::array<std::size_t, kNumSmallClasses> classes{};
  std::size_t n = 0;
  for (std::size_t s = kMinBlockSize; s <= kLinearLimit; s += kMinBlockSize) classes[n++] = s;
  for (std::size_t base = kLinearLimit; base < kSmallRequestLimit; base *= 2) {
    const std::size_t step = base / kClassesPerDoubling;
    for (int i = 1; i <= kClassesPerDoubling; ++i) classes[n++] = base + step * i;
  }
  return classes;
}

constexpr std::array<std::size_t, kNumSmallClasses> kClasses = BuildClasses();
static_assert(kClasses.back() == kSmallRequestLimit);

}  // namespace

std::span<const std::size_t> SmallSizeClasses() { return kClasses; }

absl::Status ValidateSizeClasses(std::span<const std::size_t> classes, double max_waste) {
  if (classes.empty()) return absl::InvalidArgumentError("size-class table is empty");
  if (classes.back() != kSmallRequestLimit) {
    return absl::InvalidArgumentError(
        absl::StrFormat("last size class is %d, expected the small-request limit %d",
                        classes.back(), kSmallRequestLimit));
  }
  std::size_t previous = 0;
  for (std::size_t c : classes) {
    if (c % kMinBlockSize != 0 || c <= previous) {
      return absl::InvalidArgumentError(
          absl::StrFormat("size class %d after %d: classes must ascend in multiples of %d", c,
                          previous, kMinBlockSize));
    }
    // The worst request for class c is one byte above the previous class.
    const std::size_t worst_request = previous + 1;
    if (worst_request >= kLinearLimit) {
      const double waste = static_cast<double>(c - worst_request) / worst_request;
      if (waste >= max_waste) {
        return absl::InvalidArgumentError(
            absl::StrFormat("size class %d wastes %.4f of a %d-byte request (limit %.4f)", c, waste,
                            worst_request, max_waste));
      }
    }
    previous = c;
  }
  return absl::OkStatus();
}

std::size_t SizeClassIndex(std::size_t size) {
  if (size <= kLinearLimit) return (size + kMinBlockSize - 1) / kMinBlockSize - 1;
  // Classes for (base, 2*base] are base + k*base/8, k = 1..8, with base = 2^floor(log2(size-1)).
  const int log2_base = std::bit_width(size - 1) - 1;
  const std::size_t base = std::size_t{1} << log2_base;
  const std::size_t step = base / kClassesPerDoubling;
  const std::size_t k = (size - base + step - 1) / step;  // 1..8
  const std::size_t doublings = static_cast<std::size_t>(log2_base) - 12;
  return kLinearLimit / kMinBlockSize + doublings * kClassesPerDoubling + (k - 1);
}

SizeRounder::SizeRounder(std::vector<std::size_t> power2_divisions)
    : power2_divisions_(std::move(power2_divisions)) {}

std::size_t SizeRounder::RoundRequest(std::size_t size) const {
  if (IsSmall(size)) return kClasses[SizeClassIndex(size)];
  const std::size_t plain = (size + kMinBlockSize - 1) / kMinBlockSize * kMinBlockSize;
  const int log2_floor = std::bit_width(size) - 1;
  if (static_cast<std::size_t>(log2_floor) >= power2_divisions_.size()) return plain;
  const std::size_t divisions = power2_divisions_[log2_floor];
  if (divisions <= 1) return plain;
  // PyTorch's rule: split [2^k, 2^(k+1)) into `divisions` equal steps and round up to a step.
  const std::size_t base = std::size_t{1} << log2_floor;
  const std::size_t step = std::max(base / divisions, kMinBlockSize);
  const std::size_t rounded = (size + step - 1) / step * step;
  return std::max(rounded, plain);
}

std::size_t SizeRounder::SegmentSizeFor(std::size_t rounded) {
  if (rounded <= kSmallRequestLimit) return kSmallSegmentSize;
  if (rounded <= kMidRequestLimit) return kMidSegmentSize;
  return (rounded + kLargeSegmentRounding - 1) / kLargeSegmentRounding * kLargeSegmentRounding;
}

}  // namespace vramcache
