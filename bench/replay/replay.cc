// The replay loop and the minimum-capacity search. The loop indexes vectors by the trace's dense
// pointer ids, so its cost is the allocator's own; the timeline is a separate instantiation of
// the loop, so a replay without one pays nothing for it.
#include "bench/replay/replay.h"

#include <algorithm>
#include <chrono>
#include <limits>
#include <optional>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "allocator/core/caching_allocator.h"
#include "allocator/core/clock.h"
#include "allocator/device/sim_device.h"

namespace vramcache {
namespace {

// What the replay holds for one trace pointer while it is live.
struct LiveSlot {
  void* ptr = nullptr;     // null for zero-byte and failed allocations: nothing to free
  std::uint64_t size = 0;  // requested bytes counted live (0 when the allocation failed)
};

PassDeviceCalls CallsBetween(const DeviceStats& before, const DeviceStats& after,
                             const SimCounters* sim_before, const SimCounters* sim_after) {
  PassDeviceCalls calls;
  calls.device_alloc_calls = after.num_device_alloc - before.num_device_alloc;
  calls.device_free_calls = after.num_device_free - before.num_device_free;
  calls.map_calls = after.num_map_calls - before.num_map_calls;
  calls.unmap_calls = after.num_unmap_calls - before.num_unmap_calls;
  calls.stitches = after.num_stitches - before.num_stitches;
  if (sim_before != nullptr && sim_after != nullptr) {
    for (std::size_t op = 0; op < kSimOpCount; ++op) {
      const std::int64_t count = sim_after->calls[op] - sim_before->calls[op];
      if (count != 0) {
        calls.sim_calls.emplace_back(std::string(SimOpName(static_cast<SimOp>(op))), count);
      }
    }
  }
  return calls;
}

std::string DescribeEvent(const Trace& trace, std::size_t index) {
  const TraceEvent& event = trace.events[index];
  return absl::StrFormat("%s, event %d (%s of pointer 0x%x, %u bytes, stream %u)", trace.source,
                         index + 1, event.kind == TraceEventKind::kAllocate ? "allocate" : "free",
                         trace.pointer_values[event.pointer_id], event.size, event.stream);
}

// Keeps the largest sample of each line per bucket of consecutive events.
class TimelineRecorder {
 public:
  TimelineRecorder(std::size_t total_events, std::size_t max_points) {
    timeline_.events_per_bucket =
        max_points == 0 ? 1
                        : std::max<std::size_t>(1, (total_events + max_points - 1) / max_points);
    const std::size_t buckets = total_events / timeline_.events_per_bucket + 1;
    timeline_.requested.reserve(buckets);
    timeline_.allocated.reserve(buckets);
    timeline_.reserved.reserve(buckets);
  }

  void Record(std::uint64_t requested, const DeviceStats& stats) {
    const auto allocated = static_cast<std::uint64_t>(stats.allocated_bytes.all().current);
    const auto reserved = static_cast<std::uint64_t>(stats.reserved_bytes.all().current);
    if (in_bucket_ == 0) {
      timeline_.requested.push_back(requested);
      timeline_.allocated.push_back(allocated);
      timeline_.reserved.push_back(reserved);
    } else {
      timeline_.requested.back() = std::max(timeline_.requested.back(), requested);
      timeline_.allocated.back() = std::max(timeline_.allocated.back(), allocated);
      timeline_.reserved.back() = std::max(timeline_.reserved.back(), reserved);
    }
    if (++in_bucket_ == timeline_.events_per_bucket) in_bucket_ = 0;
    ++timeline_.events;
  }

  MemoryTimeline Finish() && { return std::move(timeline_); }

 private:
  MemoryTimeline timeline_;
  std::size_t in_bucket_ = 0;
};

// One pass over the trace. With kTimeline, the allocator's statistics are read after every
// event (one lock and a copy each) and fed to `recorder`.
template <bool kTimeline>
absl::Status ReplayPass(const Trace& trace, CachingAllocator& allocator,
                        std::vector<LiveSlot>& slots, ReplayResult& result,
                        TimelineRecorder* recorder) {
  std::uint64_t live_requested = 0;
  std::uint64_t peak_requested = result.peak_requested_bytes;
  std::size_t allocations = 0;
  std::size_t failed = 0;
  const std::size_t count = trace.events.size();
  const TraceEvent* const events = trace.events.data();
  LiveSlot* const live = slots.data();
  for (std::size_t i = 0; i < count; ++i) {
    const TraceEvent& event = events[i];
    LiveSlot& slot = live[event.pointer_id];
    if (event.kind == TraceEventKind::kAllocate) {
      ++allocations;
      absl::StatusOr<void*> ptr = allocator.Allocate(event.size, event.stream);
      if (ptr.ok()) [[likely]] {
        slot = LiveSlot{*ptr, event.size};
        live_requested += event.size;
        peak_requested = std::max(peak_requested, live_requested);
      } else if (absl::IsResourceExhausted(ptr.status())) {
        ++failed;
        slot = LiveSlot{};
      } else {
        return absl::Status(ptr.status().code(), absl::StrCat("replay of ", DescribeEvent(trace, i),
                                                              ": ", ptr.status().message()));
      }
    } else {
      live_requested -= slot.size;
      if (slot.ptr != nullptr) {
        if (absl::Status status = allocator.Free(slot.ptr); !status.ok()) [[unlikely]] {
          return absl::Status(status.code(), absl::StrCat("replay of ", DescribeEvent(trace, i),
                                                          ": ", status.message()));
        }
      }
      slot = LiveSlot{};
    }
    if constexpr (kTimeline) recorder->Record(live_requested, allocator.GetStats());
  }
  result.allocations += allocations;
  result.frees += count - allocations;
  result.failed_allocations += failed;
  result.peak_requested_bytes = peak_requested;
  result.events += count;
  return absl::OkStatus();
}

ReplayMode ModeOf(const DeviceStats& stats, VmmMode requested) {
  if (stats.num_map_calls > 0 || stats.address_space_reserved_bytes > 0) return ReplayMode::kVmm;
  if (stats.num_device_alloc > 0) return ReplayMode::kSegments;
  return requested == VmmMode::kOn ? ReplayMode::kVmm : ReplayMode::kSegments;
}

// Frees what the trace left live, so the next pass starts from an allocator with only a cache.
absl::Status FreeLeftovers(CachingAllocator& allocator, std::vector<LiveSlot>& slots) {
  for (LiveSlot& slot : slots) {
    if (slot.ptr != nullptr) {
      if (absl::Status status = allocator.Free(slot.ptr); !status.ok()) {
        return absl::InternalError(
            absl::StrCat("replay: freeing an allocation left live failed: ", status.message()));
      }
    }
    slot = LiveSlot{};
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<Device>> OpenSimReplayDevice(const AllocatorConfig& config,
                                                            std::optional<std::size_t> capacity) {
  SimDeviceOptions options;
  options.capacity = capacity.value_or(config.sim_capacity);
  options.granularity = config.sim_granularity;
  options.accounting_only = config.sim_accounting_only;
  // Replays measure the allocator: no hazard bookkeeping on every call (the trace has no kernels
  // and completes immediately, so there is nothing to race anyway).
  options.check_hazards = false;
  absl::StatusOr<std::unique_ptr<SimDevice>> device = SimDevice::Create(options);
  if (!device.ok()) return device.status();
  return std::unique_ptr<Device>(std::move(*device));
}

std::int64_t PassDeviceCalls::total() const {
  return device_alloc_calls + device_free_calls + map_calls + unmap_calls;
}

const char* ReplayModeName(ReplayMode mode) {
  return mode == ReplayMode::kVmm ? "vmm" : "segments";
}

std::uint64_t ReplayResult::peak_allocated_bytes() const {
  return static_cast<std::uint64_t>(stats.allocated_bytes.all().peak);
}

std::uint64_t ReplayResult::peak_reserved_bytes() const {
  return static_cast<std::uint64_t>(stats.reserved_bytes.all().peak);
}

double ReplayResult::utilization() const {
  const std::uint64_t reserved = peak_reserved_bytes();
  return reserved == 0 ? 0.0
                       : static_cast<double>(peak_requested_bytes) / static_cast<double>(reserved);
}

absl::StatusOr<ReplayResult> ReplayTrace(const Trace& trace, const ReplayOptions& options) {
  if (options.repeat < 1) {
    return absl::InvalidArgumentError(
        absl::StrFormat("replay: repeat is %d; it must be at least 1", options.repeat));
  }
  if (options.capacity.has_value() && *options.capacity == 0) {
    return absl::InvalidArgumentError("replay: capacity is 0 bytes");
  }
  absl::StatusOr<std::unique_ptr<Device>> opened =
      options.open_device(options.config, options.capacity);
  if (!opened.ok()) return opened.status();
  std::unique_ptr<Device> device = std::move(*opened);

  AllocatorConfig config = options.config;
  const DeviceCapabilities& capabilities = device->Capabilities();
  if (options.capacity.has_value() && capabilities.total_bytes > *options.capacity) {
    config.budget_bytes = std::min(
        config.budget_bytes.value_or(std::numeric_limits<std::size_t>::max()), *options.capacity);
  }
  // A logical clock keeps the replay deterministic: same trace, same decisions, same numbers.
  TickClock clock;
  CachingAllocator allocator(device.get(), config, &clock);
  auto* sim = dynamic_cast<SimDevice*>(device.get());

  ReplayResult result;
  result.device_total_bytes = capabilities.total_bytes;
  result.granularity = capabilities.granularity;
  result.device_name = capabilities.name;
  std::vector<LiveSlot> slots(trace.pointer_values.size());
  std::optional<TimelineRecorder> recorder;
  if (options.timeline_points > 0) {
    recorder.emplace(trace.events.size() * static_cast<std::size_t>(options.repeat),
                     options.timeline_points);
  }

  const auto start = std::chrono::steady_clock::now();
  for (int pass = 0; pass < options.repeat; ++pass) {
    const DeviceStats before = allocator.GetStats();
    const SimCounters sim_before = sim != nullptr ? sim->Counters() : SimCounters{};
    const absl::Status replayed =
        recorder.has_value() ? ReplayPass<true>(trace, allocator, slots, result, &*recorder)
                             : ReplayPass<false>(trace, allocator, slots, result, nullptr);
    if (!replayed.ok()) return replayed;
    const bool last_pass = pass + 1 == options.repeat;
    if (!last_pass) {
      if (absl::Status status = FreeLeftovers(allocator, slots); !status.ok()) return status;
    }
    const DeviceStats after = allocator.GetStats();
    const SimCounters sim_after = sim != nullptr ? sim->Counters() : SimCounters{};
    result.per_pass.push_back(CallsBetween(before, after, sim != nullptr ? &sim_before : nullptr,
                                           sim != nullptr ? &sim_after : nullptr));
    if (last_pass) result.stats = after;
  }
  result.replay_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  result.mode = ModeOf(result.stats, config.vmm);
  if (recorder.has_value()) result.timeline = std::move(*recorder).Finish();

  if (absl::Status status = FreeLeftovers(allocator, slots); !status.ok()) return status;
  if (absl::Status status = allocator.Shutdown(); !status.ok()) {
    return absl::InternalError(
        absl::StrCat("replay: returning memory to the device failed: ", status.message()));
  }
  return result;
}

absl::StatusOr<MinCapacityResult> FindMinCapacity(const Trace& trace,
                                                  const ReplayOptions& options) {
  ReplayOptions run = options;
  run.capacity.reset();
  absl::StatusOr<ReplayResult> unlimited = ReplayTrace(trace, run);
  if (!unlimited.ok()) return unlimited.status();
  MinCapacityResult result;
  result.replays = 1;
  if (unlimited->failed_allocations > 0) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s: %d allocations fail even on the whole device (%u bytes), so there is no capacity to "
        "search for; give the device more memory",
        trace.source, unlimited->failed_allocations, unlimited->device_total_bytes));
  }
  const std::size_t granularity = unlimited->granularity;
  result.granularity = granularity;
  const auto units_for = [granularity](std::uint64_t bytes) {
    return static_cast<std::size_t>((bytes + granularity - 1) / granularity);
  };
  // Invariant: a capacity of `low` units fails and one of `high` units does not.
  std::size_t high = units_for(unlimited->peak_reserved_bytes());
  if (high == 0) return result;  // nothing is ever reserved: no memory needed
  const std::size_t max_units = unlimited->device_total_bytes / granularity;
  const auto fails_at = [&](std::size_t units) -> absl::StatusOr<bool> {
    if (units == 0) return true;  // holds no bytes, and the trace reserves some
    run.capacity = units * granularity;
    absl::StatusOr<ReplayResult> replay = ReplayTrace(trace, run);
    ++result.replays;
    if (!replay.ok()) return replay.status();
    return replay->failed_allocations > 0;
  };
  // Capacity only matters once it is reached, so the unlimited peak suffices, unless the policy
  // reads the card size (memory fractions): then widen until it holds.
  while (true) {
    absl::StatusOr<bool> fails = fails_at(high);
    if (!fails.ok()) return fails.status();
    if (!*fails) break;
    if (high >= max_units) {
      result.min_capacity_bytes = unlimited->device_total_bytes;
      return result;
    }
    high = std::min(high * 2, max_units);
  }
  // Below peak requested no allocator can succeed, so one unit under it is a known failure.
  std::size_t low = units_for(unlimited->peak_requested_bytes);
  low = low == 0 ? 0 : low - 1;
  while (high - low > 1) {
    const std::size_t middle = low + (high - low) / 2;
    absl::StatusOr<bool> fails = fails_at(middle);
    if (!fails.ok()) return fails.status();
    (*fails ? low : high) = middle;
  }
  result.min_capacity_bytes = high * granularity;
  return result;
}

}  // namespace vramcache
