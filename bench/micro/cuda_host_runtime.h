// A host stand-in for the CUDA runtime calls CUB's CachingDeviceAllocator makes, so CUB runs
// in the same CPU-only benchmark binary as vramcache (which must therefore never link cudart).
// Every call forwards to one process-wide SimDevice built with BenchSimDeviceOptions, the same
// device vramcache runs on: cudaMalloc is SimDevice::Malloc, cudaEventRecord is
// SimDevice::RecordEvent, and so on, so both allocators pay identical device costs.
#pragma once

#include "allocator/device/sim_device.h"

namespace vramcache::bench {

// The device behind the stand-in (as process-wide as the CUDA runtime's own state). Its
// counters show what CUB asked of the "GPU".
SimDevice& HostRuntimeDevice();

}  // namespace vramcache::bench
