// The facade's blocking steps (blocking_steps.h): each takes the lock around the components'
// steps and makes its device call without it.
#include "allocator/core/blocking_steps.h"

#include <cstdint>
#include <optional>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "allocator/core/oom_ladder.h"
#include "allocator/core/relaxed_capture.h"
#include "allocator/core/size_classes.h"

namespace vramcache {

absl::Status AllocatorShutDownError() {
  return absl::FailedPreconditionError("vramcache: the allocator was shut down");
}

BlockingSteps::BlockingSteps(Device* device, Mutex* mu, AllocatorComponents* components,
                             const bool* shut_down, bool caching)
    : device_(device), mu_(mu), components_(components), shut_down_(shut_down), caching_(caching) {}

// One request's rungs of the out-of-memory ladder (oom_ladder.h orders them; oom_rungs.h takes
// their steps under the lock).
class BlockingSteps::GrowthRungs final : public OomLadderRungs {
 public:
  GrowthRungs(BlockingSteps* steps, const GrowthRequest& request)
      : steps_(steps),
        request_(request),
        // Pass-through: a device allocation of the rounded size, nothing beside it.
        preferred_(steps->caching_ ? SizeRounder::SegmentSizeFor(request.rounded)
                                   : request.rounded),
        // When the preferred segment does not fit, a segment of exactly the rounded size might.
        tight_((request.rounded + kLargeSegmentRounding - 1) / kLargeSegmentRounding *
               kLargeSegmentRounding) {}

  std::size_t preferred() const { return preferred_; }

  absl::Status ReleaseAboveSoftBudget(std::size_t growth) override {
    return steps_->ReleaseForSoftBudget(growth);
  }
  std::optional<absl::StatusOr<void*>> TryGrow() override {
    // The backing is set once, at construction: read without the lock.
    const int candidates =
        tight_ < preferred_ &&
                ABSL_TS_UNCHECKED_READ(steps_->components_)->backing->RetriesWithTightSegment()
            ? 2
            : 1;
    for (int i = 0; i < candidates; ++i) {
      absl::StatusOr<void*> result = steps_->TryGrow(request_, i == 0 ? preferred_ : tight_);
      if (result.ok() || !absl::IsResourceExhausted(result.status())) return result;
      last_error_ = result.status();
    }
    return std::nullopt;
  }
  absl::Status ReleaseCachedMemory(bool* released_any) override {
    return steps_->ReleaseCachedOrSynchronize(released_any);
  }
  bool HasPendingFrees() override {
    MutexLock lock(steps_->mu_);
    return steps_->components_->frees.has_pending();
  }
  absl::Status SynchronizePendingFrees() override { return steps_->SynchronizePendingFrees(); }
  void CountRetry() override {
    MutexLock lock(steps_->mu_);
    ++steps_->components_->stats.num_alloc_retries;
  }
  absl::Status OutOfMemory() override {
    return steps_->OutOfMemory(request_, preferred_, last_error_);
  }

 private:
  BlockingSteps* const steps_;
  const GrowthRequest request_;
  const std::size_t preferred_;
  const std::size_t tight_;
  absl::Status last_error_;  // the last growth's, for the report
};

absl::StatusOr<void*> BlockingSteps::Grow(const GrowthRequest& request) {
  // Growth and the out-of-memory ladder allocate, free and synchronize on the device.
  RelaxedCapture relaxed(device_);
  GrowthRungs rungs(this, request);
  // The soft budget is an atomic in the limits: read without the lock.
  const bool soft_budget = ABSL_TS_UNCHECKED_READ(components_)->limits.soft_budget() > 0;
  return ClimbOomLadder(rungs, request.capturing, soft_budget, rungs.preferred());
}

absl::StatusOr<void*> BlockingSteps::TryGrow(const GrowthRequest& request,
                                             std::size_t segment_size) {
  {
    MutexLock lock(mu_);
    if (*shut_down_) return AllocatorShutDownError();
    if (auto served = components_->rungs.BeginGrowth(request, segment_size))
      return *std::move(served);
  }
  absl::StatusOr<DevicePtr> memory = device_->Malloc(segment_size);
  MutexLock lock(mu_);
  components_->rungs.GrowthReturned(segment_size);
  if (!memory.ok()) return memory.status();
  if (*shut_down_) {
    mu_->Unlock();
    device_->Free(*memory).IgnoreError();
    mu_->Lock();
    return AllocatorShutDownError();
  }
  return components_->rungs.ServeFromNewSegment(*memory, segment_size, request);
}

absl::Status BlockingSteps::SynchronizePendingFrees() {
  std::uint64_t synced_through = 0;
  {
    MutexLock lock(mu_);
    if (!components_->frees.has_pending()) return absl::OkStatus();
    ++components_->stats.num_sync_all_streams;
    synced_through = components_->frees.newest_order();
  }
  // The lock is dropped for the synchronization: what other threads free meanwhile is not
  // covered by it (their streams' work may have been queued after it began).
  if (absl::Status s = device_->SynchronizeDevice(); !s.ok()) return s;
  MutexLock lock(mu_);
  components_->graph_pools.MarkSynchronized(synced_through);
  return components_->lifecycle.ReturnCompletedFrees(synced_through, /*into_reuse_cache=*/false);
}

absl::Status BlockingSteps::ReleaseForSoftBudget(std::size_t growth) {
  absl::StatusOr<std::vector<Segment*>> released;
  {
    MutexLock lock(mu_);
    released = components_->rungs.ReleaseAboveSoftBudget(growth);
  }
  if (!released.ok()) return released.status();
  return FreeSegmentMemory(*released);
}

absl::Status BlockingSteps::ReleaseCachedOrSynchronize(bool* released_any) {
  CacheRelease release;
  {
    MutexLock lock(mu_);
    release = components_->rungs.ReleaseCached();
  }
  *released_any = release.synchronize || !release.detached.empty();
  if (!release.synchronize) return FreeSegmentMemory(release.detached);
  if (absl::Status s = device_->SynchronizeDevice(); !s.ok()) return s;
  MutexLock lock(mu_);
  components_->rungs.Synchronized(release.synced_through);
  return absl::OkStatus();
}

absl::Status BlockingSteps::FreeSegmentMemory(const std::vector<Segment*>& segments) {
  absl::Status status = absl::OkStatus();
  std::int64_t freed_calls = 0;
  std::size_t freed_bytes = 0;
  for (Segment* segment : segments) {
    status.Update(device_->Free(segment->base));
    ++freed_calls;
    freed_bytes += segment->size;
    delete segment;
  }
  if (freed_calls > 0) {
    MutexLock lock(mu_);
    components_->backing->SegmentsFreed(freed_calls, freed_bytes);
  }
  return status;
}

absl::Status BlockingSteps::OutOfMemory(const GrowthRequest& request, std::size_t segment_size,
                                        const absl::Status& device_error) {
  OomFacts facts{
      .device = device_->Capabilities().ordinal,
      .stream = request.stream,
      .requested_bytes = request.size,
      .rounded_bytes = request.rounded,
      .segment_bytes = segment_size,
      .device_total_bytes = device_->Capabilities().total_bytes,
      .mem_info = device_->MemInfo(),
      .device_error = device_error,
  };
  OomRungs::OutOfMemoryOutcome outcome;
  {
    MutexLock lock(mu_);
    outcome = components_->rungs.OutOfMemory(std::move(facts));
  }
  const std::string observer_failure = NotifyOomObservers(outcome.observers, outcome.report);
  return absl::ResourceExhaustedError(absl::StrCat(outcome.report.ToString(), observer_failure));
}

}  // namespace vramcache
