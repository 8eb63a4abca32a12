// The out-of-memory ladder and its report. When no cached block serves a request the allocator
// climbs rungs, each cheaper than the next and each followed by another try to grow: release
// cached memory above the soft budget, grow; release cached memory the backing can give back
// (and, in virtual-memory mode, wait for the device so that freed pages can give theirs), grow;
// wait for the frees still pending on other streams, grow; else report. The order lives here;
// the rungs are the allocator's, because they drop and retake its lock around device calls
// that can block, which no component here may make under it. The report's numbers come from
// the allocator (OomFacts, taken under its lock) and the observers are called with no lock held.
#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "allocator/core/oom_report.h"
#include "allocator/device/device.h"

namespace vramcache {

// The allocator's rungs. Each is called without the allocator's lock and takes it as it needs.
class OomLadderRungs {
 public:
  virtual ~OomLadderRungs() = default;
  // Releases cached memory so that growing by `growth` bytes stays under the soft budget.
  virtual absl::Status ReleaseAboveSoftBudget(std::size_t growth) = 0;
  // One try to grow and serve the request: its result, or nullopt when it found no memory.
  virtual std::optional<absl::StatusOr<void*>> TryGrow() = 0;
  // Releases what the backing holds and nothing uses (segment mode: wholly free segments;
  // virtual-memory mode: synchronizes the device so that freed pages can give their chunks).
  // `released_any`: whether anything was, so that growing again may succeed.
  virtual absl::Status ReleaseCachedMemory(bool* released_any) = 0;
  // Whether frees wait for other streams' work, and waiting for all of them.
  virtual bool HasPendingFrees() = 0;
  virtual absl::Status SynchronizePendingFrees() = 0;
  // Counts a retry after a rung (num_alloc_retries).
  virtual void CountRetry() = 0;
  // Reports the out-of-memory: builds the report, calls the observers, returns the error.
  virtual absl::Status OutOfMemory() = 0;
};

// Climbs the ladder for one request. `capturing`: freeing or synchronizing is illegal during a
// graph capture, so there is no ladder then, only one growth and the report. `soft_budget`:
// whether a soft budget is set (its rung is skipped otherwise). `growth`: the segment the
// request prefers, for the soft budget.
absl::StatusOr<void*> ClimbOomLadder(OomLadderRungs& rungs, bool capturing, bool soft_budget,
                                     std::size_t growth);

// What the allocator knows when a request fails, taken under its lock (BuildOomReport).
struct OomFacts {
  int device = 0;
  StreamHandle stream = 0;
  std::size_t requested_bytes = 0;
  std::size_t rounded_bytes = 0;
  std::size_t segment_bytes = 0;
  std::size_t device_total_bytes = 0;  // the capabilities' total, if the device cannot tell
  absl::StatusOr<DeviceMemInfo> mem_info = DeviceMemInfo{};  // asked outside the lock
  std::size_t allocated_bytes = 0;
  std::size_t reserved_bytes = 0;
  std::size_t cached_free_bytes = 0;
  std::size_t largest_free_block_bytes = 0;
  std::size_t pending_free_bytes = 0;
  std::size_t budget_bytes = 0;
  absl::Status device_error;  // the last growth's error
};

// The report and its verdict from the facts (pure).
OomReport BuildOomReport(const OomFacts& facts);

// PyTorch's attachOutOfMemoryObserver: (device, requested, allocated, budget or device total,
// device free). The same type as CachingAllocator::OomObserver.
using OomObserverFn = std::function<void(int device, std::size_t requested, std::size_t allocated,
                                         std::size_t limit, std::size_t device_free)>;

// Calls every observer with the report's numbers; one that throws does not stop the others.
// Returns what to append to the error message ("" when none threw). Call it with no lock held:
// an observer may call back into the allocator, and one that throws must unwind through no
// lock of ours.
std::string NotifyOomObservers(const std::vector<OomObserverFn>& observers,
                               const OomReport& report);

}  // namespace vramcache
