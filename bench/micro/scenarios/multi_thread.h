// multi_thread: 1, 2 and 4 threads share one allocator, each on its own stream, each
// allocating a batch of four sizes (small and large pool) and freeing it. Measures contention
// on the allocator's lock: with perfect scaling items_per_second grows with the threads (real
// time, all threads together).
#pragma once

#include <array>
#include <cstddef>

#include "allocator/core/config.h"
#include "bench/micro/allocator_adapter.h"
#include "bench/micro/bench_support.h"
#include "benchmark/benchmark.h"

namespace vramcache::bench {

inline constexpr std::array<std::size_t, 4> kMultiThreadBatch = {4 * kKiB, 64 * kKiB, 512 * kKiB,
                                                                 4 * kMiB};

template <AllocatorAdapter A>
void MultiThread(benchmark::State& state) {
  // One allocator for all threads of a run: thread 0 makes it before the loop's start barrier
  // and destroys it after the end barrier, so the others only touch it inside the loop.
  static A* shared = nullptr;
  if (state.thread_index() == 0) shared = new A();
  const StreamHandle stream = kStreamA + static_cast<StreamHandle>(state.thread_index());

  std::array<void*, kMultiThreadBatch.size()> batch{};
  bool failed = false;
  for (auto _ : state) {
    // After an error the loop runs on idle: leaving it early would strand the other threads
    // at the end barrier.
    if (failed) continue;
    for (std::size_t i = 0; i < batch.size() && !failed; ++i) {
      absl::StatusOr<void*> ptr = shared->Allocate(kMultiThreadBatch[i], stream);
      if (!ptr.ok()) {
        ReportError(state, ptr.status());
        failed = true;
        break;
      }
      batch[i] = *ptr;
    }
    for (void*& ptr : batch) {
      if (ptr == nullptr) continue;
      if (absl::Status s = shared->Free(ptr, stream); !s.ok() && !failed) {
        ReportError(state, s);
        failed = true;
      }
      ptr = nullptr;
    }
  }
  if (state.thread_index() == 0) {
    delete shared;
    shared = nullptr;
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(batch.size()));
}

template <AllocatorAdapter A>
void RegisterMultiThread() {
  benchmark::RegisterBenchmark(BenchName("multi_thread", A::kName).c_str(), MultiThread<A>)
      ->Threads(1)
      ->Threads(2)
      ->Threads(4)
      ->UseRealTime();
}

}  // namespace vramcache::bench
