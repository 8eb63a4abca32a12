// The caching allocator for one device: size classes for small requests, best fit with split
// and coalesce for large ones, free lists keyed by stream. Policy only: device, configuration
// and clock are passed in. Thread-safe.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "allocator/core/block.h"
#include "allocator/core/clock.h"
#include "allocator/core/config.h"
#include "allocator/core/oom_report.h"
#include "allocator/core/runtime_settings.h"
#include "allocator/core/stats.h"
#include "allocator/device/device.h"

namespace vramcache {

class CachingAllocatorImpl;

// A copy of one segment and its blocks, for snapshots (memory_viz) and tests.
struct BlockInfo {
  DevicePtr addr = 0;
  std::size_t size = 0;
  std::size_t requested = 0;
  BlockState state = BlockState::kFree;
  PoolId pool = kDefaultPool;
};
struct SegmentInfo {
  DevicePtr base = 0;
  std::size_t size = 0;
  StreamHandle stream = 0;
  bool small = false;
  std::vector<BlockInfo> blocks;
};

// One entry of the allocation history (config record_history), in PyTorch's vocabulary.
enum class TraceAction {
  kAlloc,
  kFreeRequested,
  kFreeCompleted,
  kSegmentAlloc,
  kSegmentFree,
  kOom
};
const char* TraceActionName(TraceAction action);
struct TraceEntry {
  TraceAction action = TraceAction::kAlloc;
  DevicePtr addr = 0;
  std::size_t size = 0;
  StreamHandle stream = 0;
  std::int64_t time_ns = 0;
};

class CachingAllocator {
 public:
  // `device` and `clock` must outlive the allocator.
  CachingAllocator(Device* device, const AllocatorConfig& config, Clock* clock);
  ~CachingAllocator();
  CachingAllocator(const CachingAllocator&) = delete;
  CachingAllocator& operator=(const CachingAllocator&) = delete;

  // A size of 0 returns nullptr with OkStatus, as in PyTorch. Out of memory is
  // ResourceExhausted with a message that explains itself; absurd sizes are InvalidArgument.
  absl::StatusOr<void*> Allocate(std::size_t size, StreamHandle stream);
  // Unknown pointers and double frees are InvalidArgument (nothing changes). With canaries, a
  // damaged guard band is DataLoss with a report; the memory is freed all the same.
  absl::Status Free(void* ptr);
  // Marks `ptr` as used by `stream` too (PyTorch's record_stream).
  absl::Status RecordStream(void* ptr, StreamHandle stream);
  // Call before destroying a stream (cudaStreamDestroy): CUDA hands the same handle value to a
  // later stream that is not ordered after the old one's work, so blocks cached for it wait for
  // an event recorded now, and live blocks it used wait for a device synchronization when freed.
  absl::Status StreamDestroyed(StreamHandle stream);

  // CUDA graphs. While a capture is under way, allocations on streams for which `filter`
  // returns true come from private pool `pool`, whose memory nobody else gets until the pool
  // is released; no event is queried and frees that need events wait for the capture to end.
  // A block freed during the capture stays in the pool for the next allocation the filter
  // sends there, so the filter must take a stream only while it captures into the graph
  // (PyTorch's asks cudaStreamGetCaptureInfo for the capture id): an allocation outside the
  // graph would otherwise get memory the graph's replays still use.
  void BeginAllocateToPool(PoolId pool, std::function<bool(StreamHandle)> filter);
  absl::Status EndAllocateToPool(PoolId pool);
  // Drops one use of `pool`; at zero, its free segments go back to the device and the rest as
  // soon as they are free (at the next EmptyCache).
  absl::Status ReleasePool(PoolId pool);

  // Returns every cached, unused segment to the device.
  absl::Status EmptyCache();
  // Peer access to this device's memory from device `peer_ordinal` was enabled
  // (cudaDeviceEnablePeerAccess): in virtual-memory mode, which that call does not cover, every
  // mapping present and future is made accessible to the peer (cuMemSetAccess). Nothing to do
  // in segment mode.
  absl::Status EnablePeerAccess(int peer_ordinal);
  // Debug mode `canaries`: verifies the guard bands of every live allocation after a device
  // synchronization; DataLoss naming each damaged band (allocation, offset, stream). OK with
  // nothing to do when canaries are off. FailedPrecondition during a graph capture.
  absl::Status CheckCanaries();
  // Returns every byte to the device, live allocations included; the allocator is unusable
  // afterwards (Allocate fails with FailedPrecondition).
  absl::Status Shutdown();

  DeviceStats GetStats() const;
  void ResetPeakStats();
  void ResetAccumulatedStats();

  std::vector<SegmentInfo> Snapshot() const;
  // Oldest first; empty unless config.record_history.
  std::vector<TraceEntry> History() const;
  std::optional<OomReport> LastOom() const;
  // Hard cap on reserved bytes (0 removes it). Takes effect for the next growth.
  void SetBudget(std::size_t bytes);
  std::size_t Budget() const;
  // The other devices of the process by ordinal (null for an unknown one), for record_stream
  // with a stream of another device: the free then waits for an event of that device. Without
  // it, such a record_stream is InvalidArgument.
  void SetPeerDevices(std::function<Device*(int)> resolver);
  // torch.cuda.set_per_process_memory_fraction: the cap becomes `fraction` of the device,
  // never above a configured byte budget; 0 (or a fraction that rounds to 0 bytes) means that
  // nothing fits. Cached memory above the new cap is released now, as far as live blocks allow;
  // the bytes still held above it. InvalidArgument outside [0, 1].
  absl::StatusOr<std::size_t> SetMemoryFraction(double fraction);
  // Above the soft cap, cached segments not in use are released (least recently used first)
  // before the allocator grows. 0: none.
  std::size_t SoftBudget() const;

  // Called after every out-of-memory, outside the allocator's lock, as PyTorch's
  // attachOutOfMemoryObserver: (device, requested, allocated, budget or device total, free).
  using OomObserver = std::function<void(int device, std::size_t requested, std::size_t allocated,
                                         std::size_t limit, std::size_t device_free)>;
  void AttachOomObserver(OomObserver observer);

  // The segment holding `ptr` (a live allocation or any address inside one): its base and size.
  // What PyTorch's getBaseAllocation and IPC need. NotFound for foreign pointers.
  absl::StatusOr<std::pair<DevicePtr, std::size_t>> BaseAllocation(const void* ptr) const;
  // The largest cached free block (PyTorch's cacheInfo, which cuDNN's benchmark mode uses to
  // size its workspace).
  std::size_t LargestFreeBlock() const;

  // The size actually reserved for `ptr` (the block's size, guard bands included), or NotFound.
  absl::StatusOr<std::size_t> AllocationSize(const void* ptr) const;

  // Structural checks: blocks of a segment tile it; live blocks do not overlap; no two adjacent
  // free blocks uncoalesced; statistics equal what is recomputed from the blocks.
  absl::Status CheckInvariants() const;

  // The configuration in use now: the constructor's, with the runtime settings applied since.
  AllocatorConfig config() const;
  // Changes what may change while the allocator is in use (runtime_settings.h): the next
  // request is rounded, placed and trimmed by the new settings; blocks already handed out and
  // the statistics stay as they are. Refused (FailedPrecondition) after Shutdown.
  absl::Status ApplyRuntimeSettings(const RuntimeSettings& settings);
  Device* device() const;

 private:
  std::unique_ptr<CachingAllocatorImpl> impl_;
};

}  // namespace vramcache
