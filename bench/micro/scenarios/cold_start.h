// cold_start: growth from empty. Each iteration makes a fresh allocator and times its first N
// allocations (sizes from the shared size stream), so nearly every one goes to the device and
// the allocator's segment creation and first splits are what is measured. Making the
// allocator, freeing and tearing down are not timed. Args: N.
#pragma once

#include <cstddef>
#include <memory>
#include <vector>

#include "bench/micro/allocator_adapter.h"
#include "bench/micro/bench_support.h"
#include "bench/micro/size_mix.h"
#include "benchmark/benchmark.h"

namespace vramcache::bench {

template <AllocatorAdapter A>
void ColdStart(benchmark::State& state) {
  absl::StatusOr<const SizeMix*> loaded = SharedSizeMix();
  if (!loaded.ok()) return ReportError(state, loaded.status());
  const SizeMix& mix = **loaded;
  const auto count = static_cast<std::size_t>(state.range(0));
  if (count > mix.sizes.size()) {
    return ReportError(state, absl::InvalidArgumentError("cold_start: N exceeds the size stream"));
  }

  std::vector<void*> live;
  live.reserve(count);
  for (auto _ : state) {
    state.PauseTiming();
    auto adapter = std::make_unique<A>();
    state.ResumeTiming();
    bool failed = false;
    for (std::size_t i = 0; i < count; ++i) {
      absl::StatusOr<void*> ptr = adapter->Allocate(mix.sizes[i], kDefaultStream);
      if (!ptr.ok()) {
        ReportError(state, ptr.status());
        failed = true;
        break;
      }
      live.push_back(*ptr);
    }
    state.PauseTiming();
    absl::Status freed = FreeAll(*adapter, live, kDefaultStream);
    adapter.reset();
    state.ResumeTiming();
    if (failed) break;
    if (!freed.ok()) {
      ReportError(state, freed);
      break;
    }
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(count));  // allocations
}

template <AllocatorAdapter A>
void RegisterColdStart() {
  benchmark::RegisterBenchmark(BenchName("cold_start", A::kName).c_str(), ColdStart<A>)
      ->Arg(64)
      ->Arg(1024);
}

}  // namespace vramcache::bench
