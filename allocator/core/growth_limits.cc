// Limits and the growth gate (growth_limits.h).
#include "allocator/core/growth_limits.h"

#include <algorithm>
#include <cstdint>

#include "absl/strings/str_format.h"

namespace vramcache {

GrowthLimits::GrowthLimits(const AllocatorConfig& config, std::size_t device_total_bytes)
    : device_total_(device_total_bytes),
      configured_budget_(config.budget_bytes.value_or(0)),
      soft_budget_bytes_(config.soft_budget_bytes),
      soft_budget_fraction_(config.soft_budget_fraction),
      garbage_collection_threshold_(config.garbage_collection_threshold) {
  budget_ = configured_budget_;
  if (config.per_process_memory_fraction.has_value()) {
    budget_ = CapForFraction(*config.per_process_memory_fraction);
  }
  UpdateSoftBudget();
}

void GrowthLimits::SetFractionCap(std::size_t cap) {
  budget_ = cap;
  UpdateSoftBudget();
}

void GrowthLimits::SetGarbageCollectionThreshold(double threshold) {
  garbage_collection_threshold_ = threshold;
  UpdateSoftBudget();
}

void GrowthLimits::UpdateSoftBudget() {
  const double total = static_cast<double>(device_total_);
  std::size_t soft = 0;
  if (soft_budget_bytes_.has_value()) {
    soft = *soft_budget_bytes_;
  } else if (soft_budget_fraction_.has_value()) {
    soft = static_cast<std::size_t>(*soft_budget_fraction_ * total);
  } else if (garbage_collection_threshold_ > 0.0) {
    // PyTorch reclaims cached blocks once usage passes this fraction of what it may use.
    const double limit = budget_ > 0 ? static_cast<double>(budget_) : total;
    soft = static_cast<std::size_t>(garbage_collection_threshold_ * limit);
  }
  soft_budget_.store(soft, std::memory_order_relaxed);
}

std::size_t GrowthLimits::CapForFraction(double fraction) const {
  const auto fraction_bytes =
      static_cast<std::size_t>(fraction * static_cast<double>(device_total_));
  const std::size_t cap = std::max<std::size_t>(fraction_bytes, 1);
  return configured_budget_ > 0 ? std::min(cap, configured_budget_) : cap;
}

std::size_t GrowthLimits::SoftExcess(std::size_t held, std::size_t growth) const {
  const std::size_t after = held + growth;
  const std::size_t soft = soft_budget();  // one read: a change meanwhile must not underflow
  return after <= soft ? 0 : after - soft;
}

absl::Status GrowthLimits::BeginGrowth(std::size_t reserved, std::size_t bytes) {
  const std::size_t held = reserved + growing_ + releasing_;
  if (budget_ > 0 && held + bytes > budget_) {
    return absl::ResourceExhaustedError(absl::StrFormat(
        "budget of %d bytes reached (holding %d, need %d more)", budget_, held, bytes));
  }
  growing_ += bytes;
  return absl::OkStatus();
}

absl::Status GrowthLimits::CheckPagesCanFit(std::size_t pages_bytes) const {
  if (pages_bytes > device_total_ || (budget_ > 0 && pages_bytes > budget_)) {
    return absl::ResourceExhaustedError(
        absl::StrFormat("%d bytes of pages are more than the %s of %d bytes", pages_bytes,
                        pages_bytes > device_total_ ? "device's total" : "budget",
                        pages_bytes > device_total_ ? device_total_ : budget_));
  }
  return absl::OkStatus();
}

std::size_t GrowthLimits::Headroom(std::size_t held) const {
  if (budget_ == 0) return SIZE_MAX;
  return budget_ > held ? budget_ - held : 0;
}

}  // namespace vramcache
