// The segment backing: one device allocation (cudaMalloc) per segment, given back whole
// (cudaFree) once nothing in it is used. Both device calls block, so the allocator makes them
// without its lock; around them this class keeps the books, under the lock: the growth gate
// (GrowthLimits) counts a segment in flight from before its allocation until it is adopted, and
// from its detachment until its free completes, so concurrent threads never see room the device
// does not have; the ledger counts it adopted and released. Pages need no acquiring.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "allocator/core/backing.h"
#include "allocator/core/growth_limits.h"
#include "allocator/core/stats_ledger.h"

namespace vramcache {

class SegmentBacking final : public Backing {
 public:
  // All must outlive the backing; `stats` is what `ledger` writes, the free sets the heap's.
  SegmentBacking(const DeviceStats* stats, StatsLedger* ledger, GrowthLimits* limits,
                 const FreeBlockSet* small_free, const FreeBlockSet* large_free)
      : stats_(stats),
        ledger_(ledger),
        limits_(limits),
        small_free_(small_free),
        large_free_(large_free) {}

  std::size_t HeldBytes() const override {
    return static_cast<std::size_t>(stats_->reserved_bytes.all().current);
  }
  void SetBudget(std::size_t) override {}  // the gate reads the limits
  std::size_t AddressSpaceBytes() const override { return 0; }
  CachedFree FreeMemory() const override;
  std::size_t LargestAllocation(std::size_t reuse_cache_largest,
                                absl::FunctionRef<std::size_t()>) const override {
    return std::max(FreeMemory().largest_block, reuse_cache_largest);
  }
  bool RetriesWithTightSegment() const override { return true; }
  void BeforeHeapSearch(std::optional<bool>, bool, StreamHandle) override {}
  absl::Status AcquirePages(Block*) override { return absl::OkStatus(); }
  void ReleasePages(Block*, const StreamsNow&) override {}
  absl::Status EnablePeerAccess(int) override { return absl::OkStatus(); }
  void StreamDestroyed(StreamHandle) override {}
  void FlushDeferredReleases(const StreamsNow&) override {}
  void CaptureEnded(const StreamsNow&) override {}
  void DropDeferredReleases() override {}

  // Before the device allocation of a `bytes` segment: OK and counted in flight, or
  // ResourceExhausted when the budget does not allow it.
  absl::Status BeginGrowth(std::size_t bytes) { return limits_->BeginGrowth(HeldBytes(), bytes); }
  // The device allocation returned (the segment is adopted next, if it succeeded).
  void EndGrowth(std::size_t bytes) { limits_->EndGrowth(bytes); }
  // Its bytes count as in flight until its device free completes (Freed).
  void Detached(const Segment& segment) override {
    ledger_->CountSegmentReleased(segment);
    limits_->BeginRelease(segment.size);
  }
  void AppendSnapshot(const Segment& segment, std::vector<SegmentInfo>* out) const override;
  void SegmentsFreed(std::int64_t calls, std::size_t bytes) override {
    ledger_->CountDeviceFrees(calls);
    limits_->EndRelease(bytes);
  }
  absl::Status ReleaseAllAtShutdown(std::vector<Segment*>*) override { return absl::OkStatus(); }

 private:
  const DeviceStats* const stats_;
  StatsLedger* const ledger_;
  GrowthLimits* const limits_;
  const FreeBlockSet* const small_free_;
  const FreeBlockSet* const large_free_;
};

}  // namespace vramcache
