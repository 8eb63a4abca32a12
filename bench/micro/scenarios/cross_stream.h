// cross_stream: allocate on stream A, use on stream B, free; repeat. Each allocator is used the
// way it must be for that to be safe (see FreeCrossStream in allocator_adapter.h), so this
// measures the whole price of cross-stream memory: recording the extra use, the event behind
// the free, and reusing the block once the event has completed. Args: request size in bytes.
#pragma once

#include <cstddef>

#include "allocator/core/config.h"
#include "bench/micro/allocator_adapter.h"
#include "bench/micro/bench_support.h"
#include "benchmark/benchmark.h"

namespace vramcache::bench {

template <AllocatorAdapter A>
void CrossStream(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  A adapter;
  for (auto _ : state) {
    absl::StatusOr<void*> ptr = adapter.Allocate(size, kStreamA);
    if (!ptr.ok()) {
      ReportError(state, ptr.status());
      break;
    }
    benchmark::DoNotOptimize(*ptr);
    if (absl::Status s = adapter.FreeCrossStream(*ptr, kStreamA, kStreamB); !s.ok()) {
      ReportError(state, s);
      break;
    }
  }
  state.counters["held_bytes"] = static_cast<double>(adapter.DeviceHeldBytes());
  state.SetItemsProcessed(state.iterations());  // items: allocate+free pairs
}

template <AllocatorAdapter A>
void RegisterCrossStream() {
  benchmark::RegisterBenchmark(BenchName("cross_stream", A::kName).c_str(), CrossStream<A>)
      ->Arg(4 * kKiB)
      ->Arg(kMiB);
}

}  // namespace vramcache::bench
