// Error reporting shared by the scenarios.
#include "bench/micro/bench_support.h"

#include <atomic>
#include <string>

namespace vramcache::bench {

namespace {
std::atomic<bool> any_failed{false};
}  // namespace

void ReportError(benchmark::State& state, const absl::Status& status) {
  any_failed.store(true, std::memory_order_relaxed);
  const std::string message(status.ToString());
  state.SkipWithError(message.c_str());
}

bool AnyBenchmarkFailed() { return any_failed.load(std::memory_order_relaxed); }

}  // namespace vramcache::bench
