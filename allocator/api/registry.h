// The process-wide allocators: one CachingAllocator per device, created on first use from the
// configuration (VRAMCACHE_CONF and PyTorch's variables, or an explicit Configure call). The
// registry itself is never destroyed, because PyTorch frees tensors during static destruction.
//
// Shutdown may race any other call. So callers never hold a bare allocator: Get and Existing
// hand out references that keep the allocators (and their devices) alive until the call using
// them returns. Shutdown detaches the allocators, shuts each down (a call still running on one
// then fails with the allocator's "shut down" error), and the last reference frees them.
#pragma once

#include <memory>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "allocator/base/mutex.h"
#include "allocator/core/caching_allocator.h"
#include "allocator/core/clock.h"
#include "allocator/core/config.h"

namespace vramcache {

// The devices and allocators opened from one configuration, freed with the last reference.
struct RegistryGeneration {
  ~RegistryGeneration();

  std::unique_ptr<Clock> clock;
  std::vector<std::unique_ptr<Device>> devices;
  std::vector<std::unique_ptr<CachingAllocator>> allocators;  // one per device, same order
};

// An allocator and what keeps it alive: use it only through this object, within one call.
class AllocatorRef {
 public:
  AllocatorRef(std::shared_ptr<const RegistryGeneration> generation, CachingAllocator* allocator)
      : generation_(std::move(generation)), allocator_(allocator) {}
  CachingAllocator* operator->() const { return allocator_; }
  CachingAllocator* get() const { return allocator_; }
  // The device this allocator serves (tests look at simulated devices' counters through it).
  Device* device() const { return allocator_->device(); }

 private:
  std::shared_ptr<const RegistryGeneration> generation_;
  CachingAllocator* allocator_;
};

class Registry {
 public:
  static Registry& Global();

  // Sets the configuration; fails with FailedPrecondition once allocators exist.
  absl::Status Configure(const AllocatorConfig& config);
  // OK when the configuration in use, or the one the first allocation would read from the
  // environment, is valid; the environment's error otherwise. Changes nothing.
  absl::Status CheckConfiguration();
  // torch.cuda.memory._set_allocator_settings(text), in PyTorch's syntax and keys. Before the
  // first allocation every key may change (the text goes on top of the configuration the first
  // allocation would use, as PyTorch's own allocator reads it then); afterwards only the runtime
  // settings (allocator_settings.h), on every device's allocator, and nothing changes unless
  // all of the text can apply.
  absl::Status ApplyAllocatorSettings(std::string_view text);
  // The allocator of `device` (InvalidArgument for a device that does not exist).
  absl::StatusOr<AllocatorRef> Get(int device);
  absl::StatusOr<int> DeviceCount();
  // Every allocator that exists now (none before first use).
  std::vector<AllocatorRef> Existing();
  // Returns every byte to every device and forgets allocators and configuration; the next Get
  // starts afresh. Calls running meanwhile finish on the old allocators, which refuse new work.
  // For tests and orderly process exit.
  absl::Status Shutdown();
  // Whether Shutdown has run: a pointer from before it is unknown now, and errors say why.
  bool HasShutDown();

 private:
  absl::Status InitializeLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  Mutex mu_;
  bool configured_ ABSL_GUARDED_BY(mu_) = false;
  AllocatorConfig config_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<RegistryGeneration> generation_ ABSL_GUARDED_BY(mu_);
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace vramcache
