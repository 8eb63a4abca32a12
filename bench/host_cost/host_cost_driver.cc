// host_cost_driver: vramcache-bench's vramcache scenarios (fast_path, mixed_sizes, cross_stream,
// replay) with a fixed number of iterations and no Google Benchmark loop, so that an
// instruction count (valgrind --tool=callgrind) of one build can be compared with another's:
// instruction counts do not depend on the machine's load, wall-clock timings do. The measured
// work is all inside HostCostMeasured (callgrind: --toggle-collect='*HostCostMeasured*');
// setup (trace parsing, the first miss, the first replay pass) is outside it.
//
// Built by bench/compare_before_after.sh against each tree's own bench/micro sources and
// libraries (it uses only what both the tree before issue #14 and after have), so it is not a
// CMake target.
//
//   host_cost_driver SCENARIO ITERATIONS
//   SCENARIO: fast_path/4096 fast_path/1048576 mixed_sizes cross_stream/4096
//             cross_stream/1048576 replay/<trace>/vmm replay/<trace>/segments
//   Prints "SCENARIO ITERATIONS WALL_NS CPU_NS" (wall and thread CPU time of the measured part).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "allocator/api/steady_clock.h"
#include "allocator/core/caching_allocator.h"
#include "allocator/core/config.h"
#include "allocator/device/sim_device.h"
#include "allocator/trace/trace.h"
#include "bench/micro/bench_device.h"
#include "bench/micro/size_mix.h"
#include "bench/micro/trace_library.h"

namespace vramcache::bench {
namespace {

constexpr StreamHandle kDefault = 0;
constexpr StreamHandle kA = 0x1000;  // any two distinct handles: the simulated device takes all
constexpr StreamHandle kB = 0x2000;

// VramcacheSimAdapter's allocator, with the mode chosen (kAuto is the benchmark's default, which
// is virtual memory on the simulated device).
struct Peer {
  explicit Peer(VmmMode mode)
      : device(BenchSimDeviceOptions()), allocator(&device, Config(mode), &clock) {}
  static AllocatorConfig Config(VmmMode mode) {
    AllocatorConfig config;
    config.device = DeviceKind::kSim;
    config.check_invariants = false;
    config.vmm = mode;
    return config;
  }
  SimDevice device;
  SteadyClock clock;
  CachingAllocator allocator;
};

void Check(const absl::Status& status) {
  if (status.ok()) return;
  std::fprintf(stderr, "host_cost_driver: %s\n", std::string(status.message()).c_str());
  std::exit(1);
}
void* Check(absl::StatusOr<void*> ptr) {
  Check(ptr.status());
  return *ptr;
}

// The measured part of each scenario: a function of its own, never inlined, so that callgrind
// collects exactly it.
struct Work {
  virtual ~Work() = default;
  virtual void Run(long iterations) = 0;
};

extern "C" __attribute__((noinline)) void HostCostMeasured(Work* work, long iterations) {
  work->Run(iterations);
}

struct FastPath : Work {
  FastPath(std::size_t size) : peer(VmmMode::kAuto), size(size) {
    Check(peer.allocator.Free(Check(peer.allocator.Allocate(size, kDefault))));
  }
  void Run(long iterations) override {
    for (long i = 0; i < iterations; ++i) {
      Check(peer.allocator.Free(Check(peer.allocator.Allocate(size, kDefault))));
    }
  }
  Peer peer;
  std::size_t size;
};

struct CrossStream : Work {
  CrossStream(std::size_t size) : peer(VmmMode::kAuto), size(size) {}
  void Run(long iterations) override {
    for (long i = 0; i < iterations; ++i) {
      void* ptr = Check(peer.allocator.Allocate(size, kA));
      Check(peer.allocator.RecordStream(ptr, kB));
      Check(peer.allocator.Free(ptr));
    }
  }
  Peer peer;
  std::size_t size;
};

struct MixedSizes : Work {
  explicit MixedSizes(const SizeMix& mix) : peer(VmmMode::kAuto), mix(mix), live(kMixWindow) {
    for (std::size_t slot = 0; slot < kMixWindow; ++slot) {
      live[slot] = Check(peer.allocator.Allocate(mix.sizes[slot], kDefault));
    }
  }
  void Run(long iterations) override {
    for (long i = 0; i < iterations; ++i) {
      const std::size_t index = step++ & (kMixLength - 1);
      const std::uint32_t slot = mix.slots[index];
      Check(peer.allocator.Free(live[slot]));
      live[slot] = Check(peer.allocator.Allocate(mix.sizes[index], kDefault));
    }
  }
  Peer peer;
  const SizeMix& mix;
  std::vector<void*> live;
  std::size_t step = kMixWindow;
};

// bench/micro/scenarios/replay.h's pass; the first pass (cold) runs before the measured ones.
struct Replay : Work {
  Replay(const Trace& trace, VmmMode mode)
      : peer(mode),
        trace(trace),
        live(trace.pointer_values.size()),
        streams(trace.pointer_values.size(), kDefault) {
    Run(1);
  }
  void Run(long iterations) override {
    for (long pass = 0; pass < iterations; ++pass) {
      for (const TraceEvent& event : trace.events) {
        const auto stream = static_cast<StreamHandle>(event.stream);
        if (event.kind == TraceEventKind::kAllocate) {
          live[event.pointer_id] = Check(peer.allocator.Allocate(event.size, stream));
          streams[event.pointer_id] = stream;
        } else if (void*& ptr = live[event.pointer_id]; ptr != nullptr) {
          if (streams[event.pointer_id] != stream) {
            Check(peer.allocator.RecordStream(ptr, stream));
          }
          Check(peer.allocator.Free(ptr));
          ptr = nullptr;
        }
      }
      for (std::size_t id = 0; id < live.size(); ++id) {
        if (live[id] == nullptr) continue;
        Check(peer.allocator.Free(live[id]));
        live[id] = nullptr;
      }
    }
  }
  Peer peer;
  const Trace& trace;
  std::vector<void*> live;
  std::vector<StreamHandle> streams;
};

long long ThreadCpuNanos() {
  timespec now{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
  return static_cast<long long>(now.tv_sec) * 1000000000LL + now.tv_nsec;
}

int Main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s SCENARIO ITERATIONS\n", argv[0]);
    return 2;
  }
  const std::string scenario = argv[1];
  const long iterations = std::atol(argv[2]);
  SetTraceDirectory(VRAMCACHE_BENCH_TRACE_DIR);
  std::unique_ptr<Work> work;
  if (scenario.starts_with("fast_path/")) {
    work = std::make_unique<FastPath>(std::stoul(scenario.substr(10)));
  } else if (scenario.starts_with("cross_stream/")) {
    work = std::make_unique<CrossStream>(std::stoul(scenario.substr(13)));
  } else if (scenario == "mixed_sizes") {
    absl::StatusOr<const SizeMix*> mix = SharedSizeMix();
    Check(mix.status());
    work = std::make_unique<MixedSizes>(**mix);
  } else if (scenario.starts_with("replay/")) {
    const std::string rest = scenario.substr(7);
    const std::size_t slash = rest.find('/');
    const std::string mode = slash == std::string::npos ? "vmm" : rest.substr(slash + 1);
    absl::StatusOr<const Trace*> trace = LoadTrace(rest.substr(0, slash));
    Check(trace.status());
    work = std::make_unique<Replay>(**trace, mode == "segments" ? VmmMode::kOff : VmmMode::kOn);
  } else {
    std::fprintf(stderr, "%s: unknown scenario \"%s\"\n", argv[0], scenario.c_str());
    return 2;
  }
  const auto start = std::chrono::steady_clock::now();
  const long long cpu_start = ThreadCpuNanos();
  HostCostMeasured(work.get(), iterations);
  const long long cpu = ThreadCpuNanos() - cpu_start;
  const auto ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start)
          .count();
  std::printf("%s %ld %lld %lld\n", scenario.c_str(), iterations, static_cast<long long>(ns), cpu);
  return 0;
}

}  // namespace
}  // namespace vramcache::bench

int main(int argc, char** argv) { return vramcache::bench::Main(argc, argv); }
