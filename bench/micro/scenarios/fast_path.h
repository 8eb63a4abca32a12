// fast_path: one allocation and its free, same size, same stream, again and again: every
// allocation is a cache hit. The cost of the allocator's bookkeeping alone (lock, lookup,
// split or not, stats). Args: the request size in bytes.
#pragma once

#include <cstddef>

#include "allocator/core/config.h"
#include "bench/micro/allocator_adapter.h"
#include "bench/micro/bench_support.h"
#include "benchmark/benchmark.h"

namespace vramcache::bench {

template <AllocatorAdapter A>
void FastPath(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  A adapter;
  // One miss first, so the loop measures hits only.
  absl::StatusOr<void*> warm = adapter.Allocate(size, kDefaultStream);
  if (!warm.ok()) return ReportError(state, warm.status());
  if (absl::Status s = adapter.Free(*warm, kDefaultStream); !s.ok()) return ReportError(state, s);

  for (auto _ : state) {
    absl::StatusOr<void*> ptr = adapter.Allocate(size, kDefaultStream);
    if (!ptr.ok()) {
      ReportError(state, ptr.status());
      break;
    }
    benchmark::DoNotOptimize(*ptr);
    if (absl::Status s = adapter.Free(*ptr, kDefaultStream); !s.ok()) {
      ReportError(state, s);
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());  // items: allocate+free pairs
}

template <AllocatorAdapter A>
void RegisterFastPath() {
  benchmark::RegisterBenchmark(BenchName("fast_path", A::kName).c_str(), FastPath<A>)
      ->Arg(4 * kKiB)
      ->Arg(kMiB);
}

}  // namespace vramcache::bench
