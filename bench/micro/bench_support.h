// What every scenario shares: benchmark names, the streams scenarios use, and error reporting
// that also fails the process, so a smoke run whose allocator errs fails its ctest.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "allocator/device/device.h"
#include "bench/micro/allocator_adapter.h"
#include "benchmark/benchmark.h"

namespace vramcache::bench {

inline constexpr StreamHandle kDefaultStream = 0;  // cudaStreamLegacy, where PyTorch works
inline constexpr StreamHandle kStreamA = 1;
inline constexpr StreamHandle kStreamB = 2;

// "<scenario>/<allocator>", the name filters and the docs use.
inline std::string BenchName(absl::string_view scenario, absl::string_view allocator) {
  return absl::StrCat(scenario, "/", allocator);
}

// Marks the running benchmark as failed with `status` (the caller then leaves its loop) and
// remembers that one failed, for main's exit code.
void ReportError(benchmark::State& state, const absl::Status& status);
bool AnyBenchmarkFailed();

// Frees every non-null pointer in `live` (allocated and used on `stream`) and clears it.
template <AllocatorAdapter A>
absl::Status FreeAll(A& adapter, std::vector<void*>& live, StreamHandle stream) {
  for (void*& ptr : live) {
    if (ptr == nullptr) continue;
    if (absl::Status freed = adapter.Free(ptr, stream); !freed.ok()) return freed;
    ptr = nullptr;
  }
  live.clear();
  return absl::OkStatus();
}

}  // namespace vramcache::bench
