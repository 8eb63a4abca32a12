// Replays an allocation trace through a CachingAllocator on a device of the caller's choice (a
// simulated card by default) and measures what the allocator made of it: peaks, utilization,
// device calls, failed allocations. The logic behind vramcache-replay, usable from tests.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "allocator/core/config.h"
#include "allocator/core/stats.h"
#include "allocator/device/device.h"
#include "allocator/trace/trace.h"

namespace vramcache {

// Opens the device one replay runs on. `capacity` is the card size to simulate (nullopt: the
// device's own). A device that cannot shrink to it (a real GPU) reports its true total_bytes
// and the replay enforces the capacity with the allocator's budget instead. Injected so this
// library needs no CUDA: the tool's main supplies the CUDA opener.
using ReplayDeviceOpener = std::function<absl::StatusOr<std::unique_ptr<Device>>(
    const AllocatorConfig& config, std::optional<std::size_t> capacity)>;

// A SimDevice with config's granularity and accounting mode, sized `capacity` (or
// config.sim_capacity). Invalid sizes are InvalidArgument.
absl::StatusOr<std::unique_ptr<Device>> OpenSimReplayDevice(const AllocatorConfig& config,
                                                            std::optional<std::size_t> capacity);

struct ReplayOptions {
  AllocatorConfig config;
  std::optional<std::size_t> capacity;
  int repeat = 1;  // passes over the trace; what is left live is freed between passes
  ReplayDeviceOpener open_device = OpenSimReplayDevice;
  // Record a MemoryTimeline of at most this many points per line; 0 records none (the replay
  // loop then reads no statistics between events, so it costs nothing).
  std::size_t timeline_points = 0;
};

// Requested, allocated and reserved bytes over a replay (every pass, one x per event), reduced
// to buckets of `events_per_bucket` consecutive events, each keeping the largest value any of
// its events left behind, so no peak is lost however long the trace. Values are sampled after
// each event; the last bucket may hold fewer events.
struct MemoryTimeline {
  std::size_t events = 0;  // events sampled, all passes
  std::size_t events_per_bucket = 1;
  std::vector<std::uint64_t> requested;  // the replay's own sum of live requested sizes
  std::vector<std::uint64_t> allocated;  // allocated_bytes.all.current
  std::vector<std::uint64_t> reserved;   // reserved_bytes.all.current
};

// Device calls made during one pass. The allocator's counters exist on every device; the
// simulated device also counts every call by kind (SimOpName -> count, nonzero ones only).
// device_alloc_calls / device_free_calls count cudaMalloc / cudaFree in segment mode and
// cuMemCreate / cuMemRelease in virtual-memory mode.
struct PassDeviceCalls {
  std::int64_t device_alloc_calls = 0;
  std::int64_t device_free_calls = 0;
  std::int64_t map_calls = 0;
  std::int64_t unmap_calls = 0;
  // chunks of free pages mapped where another page needed one (one map each; the old mapping
  // stays, as an alias)
  std::int64_t stitches = 0;
  std::vector<std::pair<std::string, std::int64_t>> sim_calls;

  // Every device call of the pass: alloc + free + map + unmap.
  std::int64_t total() const;
};

// What the allocator ran as. Named by what it did, not by what was asked: vmm when it mapped
// pages or reserved address space; with no device call at all, the configuration decides
// (vmm:on is vmm, anything else segments).
enum class ReplayMode { kSegments, kVmm };
const char* ReplayModeName(ReplayMode mode);  // "segments", "vmm"

struct ReplayResult {
  std::size_t events = 0;       // events replayed, all passes
  std::size_t allocations = 0;  // allocate events replayed (zero-byte ones included)
  std::size_t frees = 0;        // free events replayed (those of failed allocations free nothing)
  std::size_t failed_allocations = 0;  // refused with ResourceExhausted; the replay went on
  // The largest sum of requested sizes live at once, summed by the replay from the trace and the
  // outcome of each allocation. Equals stats.requested_bytes.all().peak for a correct allocator.
  std::uint64_t peak_requested_bytes = 0;
  DeviceStats stats;  // the allocator's, after the last pass, before anything is freed
  std::vector<PassDeviceCalls> per_pass;
  ReplayMode mode = ReplayMode::kSegments;
  MemoryTimeline timeline;             // empty unless options.timeline_points > 0
  std::size_t device_total_bytes = 0;  // the card the replay ran on
  std::size_t granularity = 0;
  std::string device_name;
  double replay_seconds = 0;  // the passes alone, without parsing or setup

  std::uint64_t peak_allocated_bytes() const;
  std::uint64_t peak_reserved_bytes() const;
  // peak requested / peak reserved: 1 is perfect, 0 when nothing was reserved.
  double utilization() const;
};

// Fails on a device that cannot be opened, an invalid option, or an allocator error other than
// running out of memory (which a correct allocator never makes on a consistent trace).
absl::StatusOr<ReplayResult> ReplayTrace(const Trace& trace, const ReplayOptions& options);

struct MinCapacityResult {
  std::size_t min_capacity_bytes = 0;  // a multiple of the granularity
  std::size_t granularity = 0;
  int replays = 0;  // how many replays the search ran
};

// The smallest granularity-aligned capacity at which `trace` replays with no failed allocation,
// by bisection between peak requested (below it a failure is certain) and the peak reserved of
// an unlimited replay (at it none can happen). The result replays cleanly and one granularity
// less does not. options.capacity is ignored; options.repeat is honoured (the capacity must
// serve every pass). Fails when the trace does not replay cleanly even without a capacity.
absl::StatusOr<MinCapacityResult> FindMinCapacity(const Trace& trace, const ReplayOptions& options);

}  // namespace vramcache
