// The process-wide allocators: one CachingAllocator per device, created on first use from the
// configuration (VRAMCACHE_CONF and PyTorch's variables, or an explicit Configure call). The
// registry itself is never destroyed, because PyTorch frees tensors during static destruction.
#pragma once

#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "allocator/base/mutex.h"
#include "allocator/core/caching_allocator.h"
#include "allocator/core/clock.h"
#include "allocator/core/config.h"

namespace vramcache {

class Registry {
 public:
  static Registry& Global();

  // Sets the configuration; fails with FailedPrecondition once allocators exist.
  absl::Status Configure(const AllocatorConfig& config);
  // The allocator of `device` (InvalidArgument for a device that does not exist).
  absl::StatusOr<CachingAllocator*> Get(int device);
  absl::StatusOr<int> DeviceCount();
  // Every allocator that exists now (none before first use).
  std::vector<CachingAllocator*> Existing();
  // Returns every byte to every device and forgets allocators and configuration; the next Get
  // starts afresh. For tests and orderly process exit.
  absl::Status Shutdown();

 private:
  absl::Status InitializeLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  Mutex mu_;
  bool configured_ ABSL_GUARDED_BY(mu_) = false;
  AllocatorConfig config_ ABSL_GUARDED_BY(mu_);
  std::vector<std::unique_ptr<Device>> devices_ ABSL_GUARDED_BY(mu_);
  std::vector<std::unique_ptr<CachingAllocator>> allocators_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<Clock> clock_ ABSL_GUARDED_BY(mu_);
};

}  // namespace vramcache
