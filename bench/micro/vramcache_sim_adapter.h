// vramcache as a benchmark peer: a CachingAllocator with the default configuration (changed
// only by --vramcache_conf, vramcache_bench_settings.h) on its own simulated device, with the
// real steady clock the API layer gives it in production.
#pragma once

#include <cstddef>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "allocator/api/steady_clock.h"
#include "allocator/core/caching_allocator.h"
#include "allocator/core/config.h"
#include "allocator/device/sim_device.h"
#include "bench/micro/bench_device.h"
#include "bench/micro/vramcache_bench_settings.h"

namespace vramcache::bench {

class VramcacheSimAdapter {
 public:
  static constexpr absl::string_view kName = "vramcache";

  VramcacheSimAdapter()
      : device_(BenchSimDeviceOptions()), allocator_(&device_, VramcacheBenchConfig(), &clock_) {}

  absl::StatusOr<void*> Allocate(std::size_t size, StreamHandle stream) {
    return allocator_.Allocate(size, stream);
  }
  absl::Status Free(void* ptr, StreamHandle /*stream: the block knows its own*/) {
    return allocator_.Free(ptr);
  }
  absl::Status FreeCrossStream(void* ptr, StreamHandle allocated_on, StreamHandle used_on) {
    if (used_on != allocated_on) {
      if (absl::Status recorded = allocator_.RecordStream(ptr, used_on); !recorded.ok()) {
        return recorded;
      }
    }
    return allocator_.Free(ptr);
  }
  std::size_t DeviceHeldBytes() const { return device_.HeldBytes(); }

 private:
  SimDevice device_;
  SteadyClock clock_;
  CachingAllocator allocator_;
};

}  // namespace vramcache::bench
