// The process-wide registry of per-device allocators.
#include "allocator/api/registry.h"

#include "absl/strings/str_format.h"
#include "allocator/api/config_parser.h"
#include "allocator/api/device_factory.h"
#include "allocator/api/steady_clock.h"

namespace vramcache {

Registry& Registry::Global() {
  static Registry* registry = new Registry();  // never destroyed: see registry.h
  return *registry;
}

absl::Status Registry::Configure(const AllocatorConfig& config) {
  MutexLock lock(&mu_);
  if (!allocators_.empty()) {
    return absl::FailedPreconditionError(
        "vramcache: configuration must be set before the first allocation");
  }
  if (absl::Status s = CheckImplemented(config); !s.ok()) return s;
  config_ = config;
  configured_ = true;
  return absl::OkStatus();
}

absl::Status Registry::InitializeLocked() {
  if (!allocators_.empty()) return absl::OkStatus();
  ConfigureMutexDebugging();
  if (!configured_) {
    absl::StatusOr<AllocatorConfig> config = ConfigFromEnvironment();
    if (!config.ok()) return config.status();
    if (absl::Status s = CheckImplemented(*config); !s.ok()) return s;
    config_ = *config;
    configured_ = true;
  }
  absl::StatusOr<std::vector<std::unique_ptr<Device>>> devices = OpenDevices(config_);
  if (!devices.ok()) return devices.status();
  // vmm:on is a demand: a device without virtual-memory support is an error, not a fallback.
  if (config_.vmm == VmmMode::kOn || config_.unmap_on_free) {
    for (const auto& device : *devices) {
      if (!device->Capabilities().vmm_supported) {
        return absl::FailedPreconditionError(absl::StrFormat(
            "vramcache: %s, but device %d (%s) does not support CUDA virtual memory "
            "management; %s",
            config_.unmap_on_free ? "unmap_on_free" : "vmm:on", device->Capabilities().ordinal,
            device->Capabilities().name,
            config_.unmap_on_free ? "turn unmap_on_free off (canaries and poison_on_free work "
                                    "without virtual memory)"
                                  : "use vmm:auto (falls back to segments) or vmm:off"));
      }
    }
  }
  devices_ = std::move(*devices);
  clock_ = std::make_unique<SteadyClock>();
  for (auto& device : devices_) {
    allocators_.push_back(std::make_unique<CachingAllocator>(device.get(), config_, clock_.get()));
  }
  return absl::OkStatus();
}

absl::StatusOr<CachingAllocator*> Registry::Get(int device) {
  MutexLock lock(&mu_);
  if (absl::Status s = InitializeLocked(); !s.ok()) return s;
  if (device < 0 || static_cast<std::size_t>(device) >= allocators_.size()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "vramcache: device %d does not exist (vramcache serves %d device%s, numbered from 0)",
        device, allocators_.size(), allocators_.size() == 1 ? "" : "s"));
  }
  return allocators_[device].get();
}

absl::StatusOr<int> Registry::DeviceCount() {
  MutexLock lock(&mu_);
  if (absl::Status s = InitializeLocked(); !s.ok()) return s;
  return static_cast<int>(allocators_.size());
}

std::vector<CachingAllocator*> Registry::Existing() {
  MutexLock lock(&mu_);
  std::vector<CachingAllocator*> out;
  for (auto& allocator : allocators_) out.push_back(allocator.get());
  return out;
}

absl::Status Registry::Shutdown() {
  MutexLock lock(&mu_);
  absl::Status status = absl::OkStatus();
  for (auto& allocator : allocators_) status.Update(allocator->Shutdown());
  allocators_.clear();
  devices_.clear();
  configured_ = false;
  return status;
}

}  // namespace vramcache
