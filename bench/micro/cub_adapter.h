// CUB's cub::CachingDeviceAllocator as a benchmark peer, running on the CUDA runtime stand-in
// (cuda_host_runtime.h). Configured to cache every size the shared traces request: bins at the
// powers of two from 512 B to 2 GiB and no cap on cached bytes. CUB's default (bins up to
// 2 MiB, at most 6 MB cached) would send most trace allocations to cudaMalloc, which the
// stand-in makes cheap and a real GPU does not; the caching configuration is the fair peer.
#pragma once

#include <cstddef>
#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "allocator/device/device.h"

namespace vramcache::bench {

class CubAdapter {
 public:
  static constexpr absl::string_view kName = "cub";

  CubAdapter();
  ~CubAdapter();
  CubAdapter(const CubAdapter&) = delete;
  CubAdapter& operator=(const CubAdapter&) = delete;

  absl::StatusOr<void*> Allocate(std::size_t size, StreamHandle stream);
  absl::Status Free(void* ptr, StreamHandle stream);
  // CUB records a block's ready event on its allocating stream only, so a correct CUB user
  // orders that stream after `used_on` (an event and a stream wait) before DeviceFree.
  absl::Status FreeCrossStream(void* ptr, StreamHandle allocated_on, StreamHandle used_on);
  // Bytes the stand-in device holds: this allocator's while it is the only one alive.
  std::size_t DeviceHeldBytes() const;

 private:
  struct State;  // keeps CUB's and CUDA's headers out of the scenarios
  std::unique_ptr<State> state_;
};

}  // namespace vramcache::bench
