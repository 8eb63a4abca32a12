// The one narrow interface between vramcache and a device. Everything that touches CUDA sits
// behind it (CudaDevice); SimDevice implements the same contract on host memory so every policy
// runs and is tested on machines without a GPU. Shaped like CUDA's virtual-memory API.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace vramcache {

// Opaque handles: a stream is the value of a cudaStream_t (0 is the legacy default stream);
// events and physical chunks are whatever the implementation hands out.
using StreamHandle = std::uintptr_t;
using EventHandle = std::uintptr_t;
using ChunkHandle = std::uint64_t;
using DevicePtr = std::uintptr_t;

struct DeviceCapabilities {
  int ordinal = 0;
  std::string name;
  std::size_t total_bytes = 0;
  // Physical chunks and their mappings are multiples of this (cuMemGetAllocationGranularity).
  std::size_t granularity = 2u << 20;
  bool vmm_supported = false;
};

struct DeviceMemInfo {
  std::size_t free_bytes = 0;  // as the device sees it, other processes included
  std::size_t total_bytes = 0;
};

// Byte patterns the debug modes write; implemented by kernels on a GPU and memset on the host.
struct FillRequest {
  DevicePtr ptr = 0;
  std::size_t bytes = 0;
  std::uint32_t pattern = 0;  // repeated as a 4-byte word, starting at ptr
};

// One range whose bytes should still be what a Fill with the same ptr and pattern wrote.
struct PatternCheck {
  DevicePtr ptr = 0;
  std::size_t bytes = 0;
  std::uint32_t pattern = 0;
};

// What differs in one checked range: where first, what is there, and how much in all.
struct PatternMismatch {
  std::size_t first_offset = 0;  // from PatternCheck::ptr
  std::uint8_t found = 0;        // the byte at first_offset
  std::uint8_t expected = 0;     // the pattern's byte there
  std::size_t differing_bytes = 0;
};

class Device {
 public:
  virtual ~Device() = default;

  virtual const DeviceCapabilities& Capabilities() const = 0;
  virtual absl::StatusOr<DeviceMemInfo> MemInfo() = 0;

  // Plain allocation (segment mode): cudaMalloc / cudaFree.
  virtual absl::StatusOr<DevicePtr> Malloc(std::size_t bytes) = 0;
  virtual absl::Status Free(DevicePtr ptr) = 0;

  // Virtual memory. Sizes and addresses are multiples of the granularity. A chunk is mapped
  // and unmapped whole, possibly at several addresses at once (aliases that share its bytes);
  // a range is mapped at most once at a time. Map also grants read/write
  // access to this device (cuMemSetAccess); GrantPeerAccess extends it to a peer.
  virtual absl::StatusOr<DevicePtr> ReserveAddress(std::size_t bytes) = 0;
  virtual absl::Status ReleaseAddress(DevicePtr base, std::size_t bytes) = 0;
  virtual absl::StatusOr<ChunkHandle> CreateChunk(std::size_t bytes) = 0;
  virtual absl::Status ReleaseChunk(ChunkHandle chunk) = 0;
  virtual absl::Status Map(DevicePtr va, std::size_t bytes, ChunkHandle chunk) = 0;
  virtual absl::Status Unmap(DevicePtr va, std::size_t bytes) = 0;
  virtual absl::Status GrantPeerAccess(DevicePtr va, std::size_t bytes, int peer_ordinal) = 0;

  // Events (timing disabled) and stream ordering.
  virtual absl::StatusOr<EventHandle> CreateEvent() = 0;
  virtual absl::Status DestroyEvent(EventHandle event) = 0;
  virtual absl::Status RecordEvent(EventHandle event, StreamHandle stream) = 0;
  // true when all work captured by the last RecordEvent has completed.
  virtual absl::StatusOr<bool> QueryEvent(EventHandle event) = 0;
  virtual absl::Status SynchronizeEvent(EventHandle event) = 0;
  virtual absl::Status StreamWaitEvent(StreamHandle stream, EventHandle event) = 0;
  virtual absl::Status SynchronizeDevice() = 0;
  // true while `stream` is being captured into a CUDA graph.
  virtual absl::StatusOr<bool> IsCapturing(StreamHandle stream) = 0;
  // The ordinal of the device `stream` belongs to (cudaStreamGetDevice); this device's for the
  // default streams.
  virtual absl::StatusOr<int> StreamOrdinal(StreamHandle stream) = 0;
  // This thread's graph-capture mode (cudaThreadExchangeStreamCaptureMode): sets it and returns
  // the previous one. In kRelaxed, a capture in global mode (on any thread) no longer forbids
  // this thread's event queries, synchronizations and allocations; querying or waiting for an
  // event recorded inside a capture stays illegal. Thread-local, never fails.
  enum class CaptureMode { kGlobal, kThreadLocal, kRelaxed };
  virtual CaptureMode ExchangeCaptureMode(CaptureMode mode) = 0;

  // Device-side work for the debug modes, ordered on `stream`.
  virtual absl::Status Fill(const FillRequest& request, StreamHandle stream) = 0;
  // Reads every range after the work already on `stream` and returns, per check in order,
  // nullopt when every byte matches, else the mismatch. Synchronizes `stream` (a debug path:
  // the answer is needed on the host), so it fails while a graph capture forbids that. Every
  // range must be device memory this device handed out; a bad one is an error and nothing is
  // read. Empty ranges match.
  virtual absl::StatusOr<std::vector<std::optional<PatternMismatch>>> VerifyPatterns(
      const std::vector<PatternCheck>& checks, StreamHandle stream) = 0;
};

}  // namespace vramcache
