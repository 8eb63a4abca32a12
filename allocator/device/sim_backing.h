// Where the simulated device's bytes live. Two implementations: host memory (a memfd for
// physical chunks, anonymous mappings for plain allocations and reserved ranges) and
// accounting only (addresses with nothing behind them, for large trace replays). SimDevice does
// all the validation and bookkeeping; a backing only carries out calls already checked.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "allocator/device/device.h"

namespace vramcache {

class SimBacking {
 public:
  virtual ~SimBacking() = default;

  // false in accounting-only mode: addresses must never be dereferenced.
  virtual bool has_memory() const = 0;

  // Plain allocation (Malloc): readable and writable at once.
  virtual absl::StatusOr<DevicePtr> AllocateBlock(std::size_t bytes, std::size_t alignment) = 0;
  virtual absl::Status FreeBlock(DevicePtr base, std::size_t bytes) = 0;

  // Address space with no access until storage is mapped into it.
  virtual absl::StatusOr<DevicePtr> ReserveRange(std::size_t bytes, std::size_t alignment) = 0;
  virtual absl::Status ReleaseRange(DevicePtr base, std::size_t bytes) = 0;

  // Physical storage of one chunk, named by an opaque location (a memfd offset). Storage keeps
  // its contents across unmap and remap until it is released.
  virtual absl::StatusOr<std::uint64_t> CreateStorage(std::size_t bytes) = 0;
  virtual absl::Status ReleaseStorage(std::uint64_t location, std::size_t bytes) = 0;
  virtual absl::Status MapStorage(DevicePtr va, std::size_t bytes, std::uint64_t location) = 0;
  // Turns a mapped range back into reserved address space (never gives up the reservation).
  virtual absl::Status UnmapRange(DevicePtr va, std::size_t bytes) = 0;
};

std::unique_ptr<SimBacking> MakeHostMemoryBacking(std::size_t capacity);
std::unique_ptr<SimBacking> MakeAccountingBacking();

// The status for a failed mmap-family call: ENOMEM becomes ResourceExhausted and names Linux's
// vm.max_map_count limit, the usual cause when many chunks are mapped; anything else Internal.
absl::Status HostMappingError(absl::string_view what, int error_number);

}  // namespace vramcache
