// The facade's steps that make a device call which can block (a segment's Malloc and Free, a
// device synchronization), each with the allocator's lock dropped around that call and taken
// around the components' steps before and after it: growth through the out-of-memory ladder,
// the synchronization that completes every pending free, and freeing detached segments. The
// components called with the lock held never block; these are the only places besides the
// facade's own entry points (caching_allocator.cc) that drop and retake the lock.
#pragma once

#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "allocator/base/mutex.h"
#include "allocator/core/allocator_components.h"
#include "allocator/core/block.h"
#include "allocator/core/oom_rungs.h"
#include "allocator/device/device.h"

namespace vramcache {

// What every entry point returns once the allocator was shut down.
absl::Status AllocatorShutDownError();

class BlockingSteps {
 public:
  // All must outlive the steps. `components` and `shut_down` are guarded by `mu`. `caching`:
  // false in pass-through mode, where each growth is a device allocation of the rounded size.
  BlockingSteps(Device* device, Mutex* mu, AllocatorComponents* components, const bool* shut_down,
                bool caching);
  BlockingSteps(const BlockingSteps&) = delete;
  BlockingSteps& operator=(const BlockingSteps&) = delete;

  // Serves `request`, which nothing cached could, by growing: the ladder (oom_ladder.h) from
  // the soft budget's release through growth, releases and synchronizations to the report.
  // Called without the lock.
  absl::StatusOr<void*> Grow(const GrowthRequest& request);

  // Waits for every pending free (a device-wide synchronization) and returns them to their
  // free lists; nothing to do, and no device call, when none is pending. Called without the
  // lock.
  absl::Status SynchronizePendingFrees();

  // Frees detached segments with the lock dropped. Their bytes were moved from reserved_bytes to
  // the limits' releasing bytes when they were detached, and leave it only now, so concurrent
  // growth never sees room the device does not have yet (the budget holds at every instant).
  absl::Status FreeSegmentMemory(const std::vector<Segment*>& segments);

 private:
  class GrowthRungs;

  // One attempt to grow by `segment_size` bytes and serve the request from the new segment
  // (virtual memory: from address space, all under the lock).
  absl::StatusOr<void*> TryGrow(const GrowthRequest& request, std::size_t segment_size);
  // The ladder's first rung: cached memory above the soft budget goes back before growing by
  // `growth`.
  absl::Status ReleaseForSoftBudget(std::size_t growth);
  // The ladder's second rung: segment mode gives back every wholly free segment; virtual memory
  // synchronizes the device, so that pages whose last use may still run can give their chunks.
  absl::Status ReleaseCachedOrSynchronize(bool* released_any);
  // The ladder's last rung: the report from what the allocator holds now, the observers called
  // with no lock held (they may call back into the allocator: stats, empty_cache), the error.
  absl::Status OutOfMemory(const GrowthRequest& request, std::size_t segment_size,
                           const absl::Status& device_error);

  Device* const device_;
  Mutex* const mu_;
  AllocatorComponents* const components_ ABSL_PT_GUARDED_BY(mu_);
  const bool* const shut_down_ ABSL_PT_GUARDED_BY(mu_);
  const bool caching_;
};

}  // namespace vramcache
