// vramcache-bench's peers: vramcache on the simulated device and, where the CUDA toolkit's
// headers were found, CUB's caching allocator on the host runtime stand-in. No cudart here.
#include "bench/micro/bench_main.h"
#include "bench/micro/scenarios/all_scenarios.h"
#include "bench/micro/vramcache_sim_adapter.h"
#if VRAMCACHE_BENCH_HAS_CUB
#include "bench/micro/cub_adapter.h"
#endif

namespace vramcache::bench {

void RegisterPeerBenchmarks() {
#if VRAMCACHE_BENCH_HAS_CUB
  benchmark::AddCustomContext("cub",
                              "CachingDeviceAllocator(bin_growth=2, min_bin=9, max_bin=31, "
                              "unlimited cache) on the host runtime stand-in");
  RegisterAllScenarios<VramcacheSimAdapter, CubAdapter>();
#else
  benchmark::AddCustomContext("cub", "not built (no CUDA toolkit headers)");
  RegisterAllScenarios<VramcacheSimAdapter>();
#endif
}

}  // namespace vramcache::bench
