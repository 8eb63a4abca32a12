// The process-wide registry of per-device allocators.
#include "allocator/api/registry.h"

#include <utility>
#include <vector>

#include "absl/strings/str_format.h"
#include "allocator/api/allocator_settings.h"
#include "allocator/api/config_parser.h"
#include "allocator/api/device_factory.h"
#include "allocator/api/steady_clock.h"

namespace vramcache {

RegistryGeneration::~RegistryGeneration() {
  allocators.clear();  // before the devices and the clock they use
  devices.clear();
}

Registry& Registry::Global() {
  static Registry* registry = new Registry();  // never destroyed: see registry.h
  return *registry;
}

absl::Status Registry::Configure(const AllocatorConfig& config) {
  MutexLock lock(&mu_);
  if (generation_ != nullptr) {
    return absl::FailedPreconditionError(
        "vramcache: configuration must be set before the first allocation");
  }
  if (absl::Status s = CheckImplemented(config); !s.ok()) return s;
  config_ = config;
  configured_ = true;
  return absl::OkStatus();
}

absl::Status Registry::ApplyAllocatorSettings(std::string_view text) {
  MutexLock lock(&mu_);
  if (generation_ == nullptr) {
    AllocatorConfig base;
    if (configured_) {
      base = config_;
    } else {
      absl::StatusOr<AllocatorConfig> environment = ConfigFromEnvironment();
      if (!environment.ok()) return environment.status();
      base = *environment;
    }
    absl::StatusOr<AllocatorConfig> updated =
        ParseConfigOnto(text, base, kSetAllocatorSettingsSource, /*pytorch_variable=*/true);
    if (!updated.ok()) return updated.status();
    if (absl::Status s = CheckImplemented(*updated); !s.ok()) return s;
    config_ = *updated;
    configured_ = true;
    return absl::OkStatus();
  }
  // Every device's settings are read before any changes, so a refusal leaves all as they were.
  std::vector<RuntimeSettings> settings;
  for (const auto& allocator : generation_->allocators) {
    absl::StatusOr<RuntimeSettings> parsed = ParseRuntimeSettings(text, allocator->config());
    if (!parsed.ok()) return parsed.status();
    settings.push_back(*std::move(parsed));
  }
  for (std::size_t i = 0; i < settings.size(); ++i) {
    if (absl::Status s = generation_->allocators[i]->ApplyRuntimeSettings(settings[i]); !s.ok()) {
      return s;  // only after a shutdown, which refuses every call
    }
  }
  if (!settings.empty()) settings.front().ApplyTo(config_);
  return absl::OkStatus();
}

absl::Status Registry::CheckConfiguration() {
  MutexLock lock(&mu_);
  if (configured_ || generation_ != nullptr) return absl::OkStatus();
  absl::StatusOr<AllocatorConfig> config = ConfigFromEnvironment();
  if (!config.ok()) return config.status();
  return CheckImplemented(*config);
}

absl::Status Registry::InitializeLocked() {
  if (generation_ != nullptr) return absl::OkStatus();
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
  auto generation = std::make_shared<RegistryGeneration>();
  generation->devices = std::move(*devices);
  generation->clock = std::make_unique<SteadyClock>();
  // Each allocator finds the other devices by ordinal, for record_stream with their streams;
  // the generation owns them all, so the raw pointers live as long as the allocators.
  RegistryGeneration* owner = generation.get();
  auto peer_devices = [owner](int ordinal) -> Device* {
    for (const auto& device : owner->devices) {
      if (device->Capabilities().ordinal == ordinal) return device.get();
    }
    return nullptr;
  };
  for (auto& device : generation->devices) {
    generation->allocators.push_back(
        std::make_unique<CachingAllocator>(device.get(), config_, generation->clock.get()));
    generation->allocators.back()->SetPeerDevices(peer_devices);
  }
  generation_ = std::move(generation);
  return absl::OkStatus();
}

absl::StatusOr<AllocatorRef> Registry::Get(int device) {
  MutexLock lock(&mu_);
  if (absl::Status s = InitializeLocked(); !s.ok()) return s;
  const std::size_t count = generation_->allocators.size();
  if (device < 0 || static_cast<std::size_t>(device) >= count) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "vramcache: device %d does not exist (vramcache serves %d device%s, numbered from 0)",
        device, count, count == 1 ? "" : "s"));
  }
  return AllocatorRef(generation_, generation_->allocators[device].get());
}

absl::StatusOr<int> Registry::DeviceCount() {
  MutexLock lock(&mu_);
  if (absl::Status s = InitializeLocked(); !s.ok()) return s;
  return static_cast<int>(generation_->allocators.size());
}

std::vector<AllocatorRef> Registry::Existing() {
  MutexLock lock(&mu_);
  std::vector<AllocatorRef> out;
  if (generation_ == nullptr) return out;
  for (auto& allocator : generation_->allocators) out.emplace_back(generation_, allocator.get());
  return out;
}

absl::Status Registry::Shutdown() {
  MutexLock lock(&mu_);
  absl::Status status = absl::OkStatus();
  // Calls still holding a reference finish on allocators that refuse new work; the last
  // reference frees them (registry.h).
  if (generation_ != nullptr) {
    for (auto& allocator : generation_->allocators) status.Update(allocator->Shutdown());
  }
  generation_.reset();
  configured_ = false;
  shut_down_ = true;
  return status;
}

bool Registry::HasShutDown() {
  MutexLock lock(&mu_);
  return shut_down_;
}

}  // namespace vramcache
