// replay: one shared trace (bench/traces/<name>.csv) replayed event by event, each iteration a
// whole pass on a warm allocator; what the trace leaves live is freed at the end of the pass,
// inside the timing. events_per_second counts trace events (allocations and frees);
// held_after_pass is what the allocator holds from the device after the first pass. The
// peers get exactly the trace's requests, zero-byte ones included (vramcache answers those
// without a block, CUB with its smallest bin).
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "allocator/trace/trace.h"
#include "bench/micro/allocator_adapter.h"
#include "bench/micro/bench_support.h"
#include "bench/micro/trace_library.h"
#include "benchmark/benchmark.h"

namespace vramcache::bench {

// One pass over `trace`; `live` is indexed by pointer id and left all null.
template <AllocatorAdapter A>
absl::Status ReplayPass(A& adapter, const Trace& trace, std::vector<void*>& live,
                        std::vector<StreamHandle>& live_streams) {
  for (const TraceEvent& event : trace.events) {
    const auto stream = static_cast<StreamHandle>(event.stream);
    if (event.kind == TraceEventKind::kAllocate) {
      absl::StatusOr<void*> ptr = adapter.Allocate(event.size, stream);
      if (!ptr.ok()) return ptr.status();
      live[event.pointer_id] = *ptr;
      live_streams[event.pointer_id] = stream;
    } else {
      void*& ptr = live[event.pointer_id];
      if (ptr != nullptr) {
        if (absl::Status s = adapter.FreeCrossStream(ptr, live_streams[event.pointer_id], stream);
            !s.ok()) {
          return s;
        }
      }
      ptr = nullptr;
    }
  }
  for (std::size_t id = 0; id < live.size(); ++id) {
    if (live[id] == nullptr) continue;
    if (absl::Status s = adapter.Free(live[id], live_streams[id]); !s.ok()) return s;
    live[id] = nullptr;
  }
  return absl::OkStatus();
}

template <AllocatorAdapter A>
void Replay(benchmark::State& state, const std::string& trace_name) {
  absl::StatusOr<const Trace*> loaded = LoadTrace(trace_name);
  if (!loaded.ok()) return ReportError(state, loaded.status());
  const Trace& trace = **loaded;

  A adapter;
  std::vector<void*> live(trace.pointer_values.size(), nullptr);
  std::vector<StreamHandle> live_streams(trace.pointer_values.size(), kDefaultStream);
  std::size_t held_after_first_pass = 0;
  for (auto _ : state) {
    if (absl::Status s = ReplayPass(adapter, trace, live, live_streams); !s.ok()) {
      ReportError(state, s);
      break;
    }
    if (held_after_first_pass == 0) held_after_first_pass = adapter.DeviceHeldBytes();
  }
  state.counters["events_per_second"] = benchmark::Counter(
      static_cast<double>(trace.events.size()), benchmark::Counter::kIsIterationInvariantRate);
  // Everything is freed after a pass: this is the cache one pass left behind, the same however
  // many passes the benchmark chose to run.
  state.counters["held_after_pass"] = static_cast<double>(held_after_first_pass);
}

template <AllocatorAdapter A>
void RegisterReplay(const std::string& trace_name) {
  benchmark::RegisterBenchmark((BenchName("replay", A::kName) + "/" + trace_name).c_str(),
                               Replay<A>, trace_name);
}

}  // namespace vramcache::bench
