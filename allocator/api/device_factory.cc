// Opens CUDA devices when present or demanded, else the simulated devices the config asks for.
#include "allocator/api/device_factory.h"

#include "absl/strings/str_format.h"
#include "allocator/device/sim_device.h"
#if defined(VRAMCACHE_HAS_CUDA)
#include "allocator/device/cuda_device.h"
#endif

namespace vramcache {

int CudaDevicesAvailable() {
#if defined(VRAMCACHE_HAS_CUDA)
  return CudaDeviceCount();
#else
  return 0;
#endif
}

namespace {

absl::StatusOr<std::unique_ptr<SimDevice>> OpenSimDevice(const AllocatorConfig& config,
                                                         int ordinal) {
  SimDeviceOptions options;
  options.ordinal = ordinal;
  options.capacity = config.sim_capacity;
  options.granularity = config.sim_granularity;
  options.accounting_only = config.sim_accounting_only;
  return SimDevice::Create(options);
}

}  // namespace

absl::StatusOr<std::vector<std::unique_ptr<Device>>> OpenDevices(const AllocatorConfig& config) {
  std::vector<std::unique_ptr<Device>> devices;
  const int cuda_count = CudaDevicesAvailable();
  const bool want_cuda =
      config.device == DeviceKind::kCuda || (config.device == DeviceKind::kAuto && cuda_count > 0);
  if (!want_cuda) {
    for (int ordinal = 0; ordinal < config.sim_devices; ++ordinal) {
      absl::StatusOr<std::unique_ptr<SimDevice>> sim = OpenSimDevice(config, ordinal);
      if (!sim.ok()) return sim.status();
      devices.push_back(std::move(*sim));
    }
    return devices;
  }
#if defined(VRAMCACHE_HAS_CUDA)
  if (cuda_count == 0) {
    return absl::FailedPreconditionError(
        "vramcache: device:cuda was asked for but no CUDA device is usable (no driver or no "
        "GPU); use device:sim to run on the simulated device");
  }
  for (int ordinal = 0; ordinal < cuda_count; ++ordinal) {
    absl::StatusOr<std::unique_ptr<CudaDevice>> device = CudaDevice::Open(ordinal);
    if (!device.ok()) return device.status();
    devices.push_back(std::move(*device));
  }
  return devices;
#else
  return absl::FailedPreconditionError(
      "vramcache: device:cuda was asked for but this build has no CUDA support");
#endif
}

}  // namespace vramcache
