// The caching allocator for one device: size classes for small requests, best fit with split
// and coalesce for large ones, free lists keyed by stream. Policy only: device, configuration
// and clock are passed in. Thread-safe.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "allocator/core/clock.h"
#include "allocator/core/config.h"
#include "allocator/core/stats.h"
#include "allocator/device/device.h"

namespace vramcache {

class CachingAllocatorImpl;

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
  // Unknown pointers and double frees are InvalidArgument (nothing changes).
  absl::Status Free(void* ptr);
  // Marks `ptr` as used by `stream` too (PyTorch's record_stream).
  absl::Status RecordStream(void* ptr, StreamHandle stream);
  // Returns every cached, unused segment to the device.
  absl::Status EmptyCache();
  // Returns every byte to the device, live allocations included; the allocator is unusable
  // afterwards (Allocate fails with FailedPrecondition).
  absl::Status Shutdown();

  DeviceStats GetStats() const;
  void ResetPeakStats();
  void ResetAccumulatedStats();

  // The size actually reserved for `ptr` (the block's size), or NotFound.
  absl::StatusOr<std::size_t> AllocationSize(const void* ptr) const;

  // Structural checks: blocks of a segment tile it; live blocks do not overlap; no two adjacent
  // free blocks uncoalesced; statistics equal what is recomputed from the blocks.
  absl::Status CheckInvariants() const;

  const AllocatorConfig& config() const;
  Device* device() const;

 private:
  std::unique_ptr<CachingAllocatorImpl> impl_;
};

}  // namespace vramcache
