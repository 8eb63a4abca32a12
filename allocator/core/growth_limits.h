// Limits and the growth gate: the hard budget (bytes, or a fraction of the device), the soft
// budget above which cached memory is released before the allocator grows, and the bytes in
// flight that the budget must count although the statistics no longer or not yet do (segments
// being grown or returned, each a device call made outside the lock). It decides whether growth
// may happen; the backings ask it and do the growing. Not thread-safe: the allocator calls it
// with its lock held. It reads neither the device nor the environment: the configuration and
// the device's total are handed to it.
#pragma once

#include <atomic>
#include <cstddef>
#include <optional>

#include "absl/status/status.h"
#include "allocator/core/config.h"

namespace vramcache {

class GrowthLimits {
 public:
  // The budget is the configured byte budget, or per_process_memory_fraction of
  // `device_total_bytes` (never above the byte budget); the soft budget comes from
  // soft_budget_bytes, soft_budget_fraction (of the device) or garbage_collection_threshold (of
  // the budget, or of the device without one), in that order; 0 for none.
  GrowthLimits(const AllocatorConfig& config, std::size_t device_total_bytes);

  // The hard cap on held bytes; 0: none.
  std::size_t budget() const { return budget_; }
  // Takes effect for the next growth; 0 removes the cap. The soft budget stays as it was.
  void SetBudget(std::size_t bytes) { budget_ = bytes; }
  // set_per_process_memory_fraction: the cap becomes `cap`, and garbage_collection_threshold,
  // a fraction of what may be reserved, follows it.
  void SetFractionCap(std::size_t cap);
  // _set_allocator_settings changed garbage_collection_threshold.
  void SetGarbageCollectionThreshold(double threshold);
  // The cap a fraction of the device sets: never above a configured byte budget (the
  // operator's cap stands), and at least 1 byte, since 0 means "no cap" here while a fraction
  // of 0 (or one that rounds to 0 bytes) means that nothing fits, as in PyTorch.
  std::size_t CapForFraction(double fraction) const;

  // Above it, cached memory not in use is released before growing; 0: none. Changed under the
  // allocator's lock, but may be read without it (the growth path asks before taking it).
  std::size_t soft_budget() const { return soft_budget_.load(std::memory_order_relaxed); }
  // Bytes to release before growing by `growth` while `held` bytes are held, to stay under the
  // soft budget; 0 when it holds already (or there is none).
  std::size_t SoftExcess(std::size_t held, std::size_t growth) const;

  // Segment mode's gate: growing by `bytes` while `reserved` bytes are reserved. Segments being
  // grown or returned count too: they occupy the device until their device call completes, so
  // concurrent threads can never overshoot the budget together. OK: the growth is counted in
  // flight until EndGrowth; else ResourceExhausted saying why.
  absl::Status BeginGrowth(std::size_t reserved, std::size_t bytes);
  void EndGrowth(std::size_t bytes) { growing_ -= bytes; }
  // Segments detached for release: counted until their device free completes.
  void BeginRelease(std::size_t bytes) { releasing_ += bytes; }
  void EndRelease(std::size_t bytes) { releasing_ -= bytes; }
  std::size_t growing_bytes() const { return growing_; }

  // Virtual-memory mode's gate: `pages_bytes` of pages can never be backed when they are more
  // than the device or the budget holds (ResourceExhausted, and no range is reserved).
  absl::Status CheckPagesCanFit(std::size_t pages_bytes) const;
  // What the budget leaves to grow while `held` bytes are held (SIZE_MAX without a budget).
  std::size_t Headroom(std::size_t held) const;

 private:
  // Recomputes the soft budget from its settings and the budget now.
  void UpdateSoftBudget();

  const std::size_t device_total_;
  const std::size_t configured_budget_;  // config.budget_bytes, 0 if none
  const std::optional<std::size_t> soft_budget_bytes_;
  const std::optional<double> soft_budget_fraction_;
  double garbage_collection_threshold_;
  std::size_t budget_ = 0;
  std::atomic<std::size_t> soft_budget_{0};
  std::size_t growing_ = 0;
  std::size_t releasing_ = 0;
};

}  // namespace vramcache
