// fragmentation: fill a fresh allocator with alternating 2 MiB and 6 MiB blocks, free every
// 2 MiB one, then time a series of 8 MiB requests that none of the holes can serve. Measures
// what a request costs when the cache is full of useless holes (the search must fail fast),
// and through held_over_live (device bytes held / bytes live at the end, 1 is no waste) what
// the holes cost in memory. Filling, freeing and tearing down are not timed. Args: the number
// of 2 MiB + 6 MiB pairs.
#pragma once

#include <cstddef>
#include <memory>
#include <vector>

#include "allocator/core/config.h"
#include "bench/micro/allocator_adapter.h"
#include "bench/micro/bench_support.h"
#include "benchmark/benchmark.h"

namespace vramcache::bench {

inline constexpr std::size_t kFragmentHole = 2 * kMiB;
inline constexpr std::size_t kFragmentKept = 6 * kMiB;
inline constexpr std::size_t kFragmentLarge = 8 * kMiB;
inline constexpr std::size_t kFragmentLargeRequests = 32;

template <AllocatorAdapter A>
absl::Status FragmentedFill(A& adapter, std::size_t pairs, std::vector<void*>& kept) {
  std::vector<void*> holes;
  holes.reserve(pairs);
  for (std::size_t i = 0; i < pairs; ++i) {
    absl::StatusOr<void*> hole = adapter.Allocate(kFragmentHole, kDefaultStream);
    if (!hole.ok()) return hole.status();
    holes.push_back(*hole);
    absl::StatusOr<void*> keep = adapter.Allocate(kFragmentKept, kDefaultStream);
    if (!keep.ok()) return keep.status();
    kept.push_back(*keep);
  }
  return FreeAll(adapter, holes, kDefaultStream);
}

template <AllocatorAdapter A>
void Fragmentation(benchmark::State& state) {
  const auto pairs = static_cast<std::size_t>(state.range(0));
  std::vector<void*> live;
  live.reserve(pairs + kFragmentLargeRequests);
  double held_over_live = 0;
  for (auto _ : state) {
    state.PauseTiming();
    auto adapter = std::make_unique<A>();
    absl::Status filled = FragmentedFill(*adapter, pairs, live);
    state.ResumeTiming();
    bool failed = false;
    if (!filled.ok()) {
      ReportError(state, filled);
      failed = true;
    }
    for (std::size_t i = 0; i < kFragmentLargeRequests && !failed; ++i) {
      absl::StatusOr<void*> ptr = adapter->Allocate(kFragmentLarge, kDefaultStream);
      if (!ptr.ok()) {
        ReportError(state, ptr.status());
        failed = true;
        break;
      }
      live.push_back(*ptr);
    }
    state.PauseTiming();
    const double live_bytes =
        static_cast<double>(pairs * kFragmentKept + kFragmentLargeRequests * kFragmentLarge);
    held_over_live = static_cast<double>(adapter->DeviceHeldBytes()) / live_bytes;
    absl::Status freed = FreeAll(*adapter, live, kDefaultStream);
    adapter.reset();
    state.ResumeTiming();
    if (failed) break;
    if (!freed.ok()) {
      ReportError(state, freed);
      break;
    }
  }
  state.counters["held_over_live"] = held_over_live;
  state.SetItemsProcessed(state.iterations() *
                          static_cast<std::int64_t>(kFragmentLargeRequests));  // large requests
}

template <AllocatorAdapter A>
void RegisterFragmentation() {
  benchmark::RegisterBenchmark(BenchName("fragmentation", A::kName).c_str(), Fragmentation<A>)
      ->Arg(256);
}

}  // namespace vramcache::bench
