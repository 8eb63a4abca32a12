// A Device decorator for GPU scenarios: forwards every call to the device it wraps (a
// CudaDevice, through ForwardingDevice) and, once, runs a hook right after SynchronizeDevice
// returns. The allocator drops its lock around that call, so the hook stands for another thread
// acting while the allocator waits there (issue #14 scenario b), at a moment no real thread
// could be timed to hit.
#pragma once

#include <functional>
#include <optional>
#include <utility>
#include <vector>

#include "allocator/device/device.h"
#include "tests/support/forwarding_device.h"

namespace vramcache::gpu_scenarios {

class SyncHookedDevice final : public ForwardingDevice {
 public:
  // Wraps `inner`, which must outlive this device.
  explicit SyncHookedDevice(Device* inner) : ForwardingDevice(inner) {}

  // Runs once, after the next SynchronizeDevice.
  std::function<void()> after_synchronize;

  absl::Status SynchronizeDevice() override {
    absl::Status status = ForwardingDevice::SynchronizeDevice();
    if (after_synchronize) std::exchange(after_synchronize, nullptr)();
    return status;
  }
};

}  // namespace vramcache::gpu_scenarios
