// RelaxedCapture: the allocator's own event queries, synchronizations and device allocations
// run in the relaxed graph-capture mode, as PyTorch's allocator does around cudaMalloc. A
// capture in global mode on another thread (one the allocator was never told about, as on the
// CUDAPluggableAllocator path) would otherwise make them fail and invalidate that capture. The
// allocator never queries an event recorded inside a capture (it records none on a capturing
// stream), which stays illegal in every mode.
#pragma once

#include "allocator/device/device.h"

namespace vramcache {

class RelaxedCapture {
 public:
  explicit RelaxedCapture(Device* device)
      : device_(device), previous_(device->ExchangeCaptureMode(Device::CaptureMode::kRelaxed)) {}
  ~RelaxedCapture() { device_->ExchangeCaptureMode(previous_); }
  RelaxedCapture(const RelaxedCapture&) = delete;
  RelaxedCapture& operator=(const RelaxedCapture&) = delete;

 private:
  Device* const device_;
  const Device::CaptureMode previous_;
};

}  // namespace vramcache
