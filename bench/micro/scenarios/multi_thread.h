// multi_thread: 1, 2 and 4 threads share one allocator, each on its own stream, each
// allocating a batch of four sizes (small and large pool) and freeing it. Measures what the
// threads cost each other: with several threads each reuses its blocks through its own front
// (allocator/core/thread_fronts.h), 1 thread takes the allocator's lock; with perfect scaling
// items_per_second grows with the threads (real time, all threads together).
// multi_thread/<peer>/private: the same with one allocator (and device) per thread, nothing
// shared: the ceiling any sharing design can reach on the machine as loaded during the run
// (issue #18: on a loaded 2-core VM it measured 1.0x its 1 thread, so "2 threads >= 1.6x 1
// thread" can only be judged against this row of the same run).
#pragma once

#include <array>
#include <cstddef>
#include <memory>

#include "absl/strings/str_cat.h"
#include "allocator/core/config.h"
#include "bench/micro/allocator_adapter.h"
#include "bench/micro/bench_support.h"
#include "benchmark/benchmark.h"

namespace vramcache::bench {

inline constexpr std::array<std::size_t, 4> kMultiThreadBatch = {4 * kKiB, 64 * kKiB, 512 * kKiB,
                                                                 4 * kMiB};

template <AllocatorAdapter A, bool kPrivate>
void MultiThread(benchmark::State& state) {
  // One allocator for all threads of a run: thread 0 makes it before the loop's start barrier
  // and destroys it after the end barrier, so the others only touch it inside the loop.
  // Private: each thread makes and destroys its own outside the loop.
  static A* shared_instance = nullptr;
  std::unique_ptr<A> own;
  if (kPrivate) {
    own = std::make_unique<A>();
  } else if (state.thread_index() == 0) {
    shared_instance = new A();
  }
  // Read inside the loop: thread 0 sets the shared one before the start barrier.
  A* const own_ptr = own.get();
  A* const* const slot = kPrivate ? &own_ptr : &shared_instance;
  const StreamHandle stream = kStreamA + static_cast<StreamHandle>(state.thread_index());

  std::array<void*, kMultiThreadBatch.size()> batch{};
  bool failed = false;
  for (auto _ : state) {
    // After an error the loop runs on idle: leaving it early would strand the other threads
    // at the end barrier.
    if (failed) continue;
    for (std::size_t i = 0; i < batch.size() && !failed; ++i) {
      absl::StatusOr<void*> ptr = (*slot)->Allocate(kMultiThreadBatch[i], stream);
      if (!ptr.ok()) {
        ReportError(state, ptr.status());
        failed = true;
        break;
      }
      batch[i] = *ptr;
    }
    for (void*& ptr : batch) {
      if (ptr == nullptr) continue;
      if (absl::Status s = (*slot)->Free(ptr, stream); !s.ok() && !failed) {
        ReportError(state, s);
        failed = true;
      }
      ptr = nullptr;
    }
  }
  if (!kPrivate && state.thread_index() == 0) {
    delete shared_instance;
    shared_instance = nullptr;
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(batch.size()));
}

template <AllocatorAdapter A>
void RegisterMultiThread() {
  benchmark::RegisterBenchmark(BenchName("multi_thread", A::kName).c_str(), MultiThread<A, false>)
      ->Threads(1)
      ->Threads(2)
      ->Threads(4)
      ->UseRealTime();
  benchmark::RegisterBenchmark(
      absl::StrCat(BenchName("multi_thread", A::kName), "/private").c_str(), MultiThread<A, true>)
      ->Threads(1)
      ->Threads(2)
      ->Threads(4)
      ->UseRealTime();
}

}  // namespace vramcache::bench
