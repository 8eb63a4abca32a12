// Chooses and opens the devices the configuration asks for: CUDA devices when a GPU is present
// (or demanded), else `sim_devices` simulated devices with ordinals 0..sim_devices-1.
#pragma once

#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "allocator/core/config.h"
#include "allocator/device/device.h"

namespace vramcache {

// Number of CUDA devices usable now (0 without a driver or GPU, or without CUDA support).
int CudaDevicesAvailable();

absl::StatusOr<std::vector<std::unique_ptr<Device>>> OpenDevices(const AllocatorConfig& config);

}  // namespace vramcache
