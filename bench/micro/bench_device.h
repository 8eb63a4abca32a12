// The simulated device every CPU peer runs on. vramcache gets its own SimDevice with these
// options and CUB's host runtime stand-in one with the same options, so a cudaMalloc under CUB
// and a Device::Malloc under vramcache cost exactly the same bookkeeping: the ratio measures the
// allocators, not their devices.
#pragma once

#include "allocator/core/config.h"
#include "allocator/device/sim_device.h"

namespace vramcache::bench {

inline SimDeviceOptions BenchSimDeviceOptions() {
  SimDeviceOptions options;
  options.capacity = 256 * kGiB;   // room for every peer's cache on the largest trace
  options.accounting_only = true;  // addresses without memory: no page faults in the timings
  options.completion = SimCompletion::kImmediate;  // events are complete when first queried
  // No hazard bookkeeping in the timings (and immediate completion leaves nothing to race).
  options.check_hazards = false;
  options.name = "vramcache-bench simulated device";
  return options;
}

}  // namespace vramcache::bench
