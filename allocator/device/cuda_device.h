// CudaDevice: the Device contract on a real GPU. Plain allocation and events use the CUDA
// runtime (linked statically by default); virtual memory uses driver entry points fetched at
// run time (cuda_driver_api.h), so nothing links libcuda.so and a machine without a driver gets
// a clean "no CUDA device" error instead of a loader failure.
//
// Rules:
//   - Every method makes this device current for the call and restores the caller's device
//     after (CudaDeviceScope), so callers on any thread need not select it themselves.
//   - Stream 0 is the legacy default stream of this device.
//   - Every CUDA failure becomes a status naming the call, the CUDA error name and its text;
//     out of memory is ResourceExhausted. Bad arguments are rejected before CUDA sees them.
//   - Thread-safe: the state is fixed at Open and CUDA's calls are themselves thread-safe.
//   - Without VMM support (Capabilities().vmm_supported false) the virtual-memory methods fail
//     with FailedPrecondition; Malloc/Free and the rest still work.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "allocator/device/device.h"

namespace vramcache {

struct CudaDriverApi;

// Number of CUDA devices usable now: 0 without a driver or GPU (never aborts).
int CudaDeviceCount();

class CudaDevice final : public Device {
 public:
  // FailedPrecondition "no CUDA device: <reason>" without a driver or GPU, InvalidArgument for
  // an ordinal outside [0, CudaDeviceCount()).
  static absl::StatusOr<std::unique_ptr<CudaDevice>> Open(int ordinal);

  CudaDevice(const CudaDevice&) = delete;
  CudaDevice& operator=(const CudaDevice&) = delete;

  const DeviceCapabilities& Capabilities() const override { return capabilities_; }
  absl::StatusOr<DeviceMemInfo> MemInfo() override;

  absl::StatusOr<DevicePtr> Malloc(std::size_t bytes) override;
  absl::Status Free(DevicePtr ptr) override;

  absl::StatusOr<DevicePtr> ReserveAddress(std::size_t bytes) override;
  absl::Status ReleaseAddress(DevicePtr base, std::size_t bytes) override;
  absl::StatusOr<ChunkHandle> CreateChunk(std::size_t bytes) override;
  absl::Status ReleaseChunk(ChunkHandle chunk) override;
  absl::Status Map(DevicePtr va, std::size_t bytes, ChunkHandle chunk) override;
  absl::Status Unmap(DevicePtr va, std::size_t bytes) override;
  absl::Status GrantPeerAccess(DevicePtr va, std::size_t bytes, int peer_ordinal) override;

  absl::StatusOr<EventHandle> CreateEvent() override;
  absl::Status DestroyEvent(EventHandle event) override;
  absl::Status RecordEvent(EventHandle event, StreamHandle stream) override;
  absl::StatusOr<bool> QueryEvent(EventHandle event) override;
  absl::Status SynchronizeEvent(EventHandle event) override;
  absl::Status StreamWaitEvent(StreamHandle stream, EventHandle event) override;
  absl::Status SynchronizeDevice() override;
  absl::StatusOr<bool> IsCapturing(StreamHandle stream) override;
  // cudaStreamGetDevice (CUDA 12.8+); the default streams are this device's.
  absl::StatusOr<int> StreamOrdinal(StreamHandle stream) override;
  CaptureMode ExchangeCaptureMode(CaptureMode mode) override;

  absl::Status Fill(const FillRequest& request, StreamHandle stream) override;
  // One verify-kernel launch for all checks, then cudaStreamSynchronize (cuda_device_verify.cc).
  absl::StatusOr<std::vector<std::optional<PatternMismatch>>> VerifyPatterns(
      const std::vector<PatternCheck>& checks, StreamHandle stream) override;

 private:
  CudaDevice(DeviceCapabilities capabilities, const CudaDriverApi* driver);

  absl::Status CheckVmmSupported(absl::string_view call) const;
  // CheckVmmSupported, and `bytes` is a positive multiple of the granularity.
  absl::Status CheckVmmSize(absl::string_view call, std::size_t bytes) const;
  // CheckVmmSize, and `va` is a non-null multiple of the granularity.
  absl::Status CheckVmmRange(absl::string_view call, DevicePtr va, std::size_t bytes) const;
  // Read/write access to [va, va + bytes) for device `ordinal` (cuMemSetAccess).
  absl::Status SetAccess(DevicePtr va, std::size_t bytes, int ordinal, absl::string_view call);

  const DeviceCapabilities capabilities_;
  const CudaDriverApi* const driver_;  // process-wide table, never freed
};

}  // namespace vramcache
