// mixed_sizes: a window of kMixWindow live allocations whose sizes follow the shared traces'
// size distribution; each step frees a random slot and allocates the stream's next size into
// it. Hits and misses, splits and coalescing, small and large pools as a real workload mixes
// them. Time only: what the allocators hold for such a workload is the replay tool's to report
// (bench/replay), where it does not depend on how many iterations the benchmark chose.
#pragma once

#include <cstddef>
#include <vector>

#include "bench/micro/allocator_adapter.h"
#include "bench/micro/bench_support.h"
#include "bench/micro/size_mix.h"
#include "benchmark/benchmark.h"

namespace vramcache::bench {

template <AllocatorAdapter A>
void MixedSizes(benchmark::State& state) {
  absl::StatusOr<const SizeMix*> loaded = SharedSizeMix();
  if (!loaded.ok()) return ReportError(state, loaded.status());
  const SizeMix& mix = **loaded;

  A adapter;
  std::vector<void*> live(kMixWindow, nullptr);
  for (std::size_t slot = 0; slot < kMixWindow; ++slot) {
    absl::StatusOr<void*> ptr = adapter.Allocate(mix.sizes[slot], kDefaultStream);
    if (!ptr.ok()) return ReportError(state, ptr.status());
    live[slot] = *ptr;
  }

  std::size_t step = kMixWindow;
  for (auto _ : state) {
    const std::size_t index = step++ & (kMixLength - 1);
    const std::uint32_t slot = mix.slots[index];
    if (absl::Status s = adapter.Free(live[slot], kDefaultStream); !s.ok()) {
      ReportError(state, s);
      break;
    }
    live[slot] = nullptr;
    absl::StatusOr<void*> ptr = adapter.Allocate(mix.sizes[index], kDefaultStream);
    if (!ptr.ok()) {
      ReportError(state, ptr.status());
      break;
    }
    live[slot] = *ptr;
  }

  if (absl::Status s = FreeAll(adapter, live, kDefaultStream); !s.ok()) ReportError(state, s);
  state.SetItemsProcessed(state.iterations());  // items: free+allocate steps
}

template <AllocatorAdapter A>
void RegisterMixedSizes() {
  benchmark::RegisterBenchmark(BenchName("mixed_sizes", A::kName).c_str(), MixedSizes<A>);
}

}  // namespace vramcache::bench
