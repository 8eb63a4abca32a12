// The shape every allocator under benchmark takes, so one scenario template measures vramcache,
// CUB and (in the GPU binary) cudaMalloc, cudaMallocAsync or PyTorch the same way. Streams are
// cudaStream_t values carried as integers (0 is the legacy default stream).
#pragma once

#include <concepts>
#include <cstddef>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "allocator/device/device.h"

namespace vramcache::bench {

// A default-constructed adapter is a fresh, empty allocator (scenarios that measure growth
// construct one per iteration). Free(ptr, stream) frees memory allocated and used on `stream`
// alone; FreeCrossStream frees memory allocated on `allocated_on` and last used on `used_on`,
// the way a correct user of that allocator must (vramcache: record_stream, then free; CUB: make
// the owning stream wait for `used_on` first; cudaMallocAsync: cudaFreeAsync on `used_on`).
// DeviceHeldBytes is what the allocator holds from the device now, cache included.
template <typename A>
concept AllocatorAdapter = std::default_initializable<A> &&
    requires(A adapter, const A& const_adapter, std::size_t size, void* ptr, StreamHandle stream) {
  { A::kName } -> std::convertible_to<absl::string_view>;
  { adapter.Allocate(size, stream) } -> std::same_as<absl::StatusOr<void*>>;
  { adapter.Free(ptr, stream) } -> std::same_as<absl::Status>;
  { adapter.FreeCrossStream(ptr, stream, stream) } -> std::same_as<absl::Status>;
  { const_adapter.DeviceHeldBytes() } -> std::same_as<std::size_t>;
};

}  // namespace vramcache::bench
