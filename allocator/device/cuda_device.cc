// CudaDevice: runtime calls for plain memory, events and streams; driver entry points for VMM;
// the fill kernel for Fill. Each method validates its arguments, enters the device, calls CUDA
// and turns the result into a status.
#include "allocator/device/cuda_device.h"

#include <cuda.h>
#include <cuda_runtime_api.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "allocator/device/cuda_device_scope.h"
#include "allocator/device/cuda_driver_api.h"
#include "allocator/device/cuda_status.h"
#include "kernels/fill.h"

namespace vramcache {
namespace {

// Physical memory pinned on the device `ordinal`, the only kind of chunk vramcache creates.
CUmemAllocationProp PinnedDeviceMemory(int ordinal) {
  CUmemAllocationProp prop = {};
  prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
  prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
  prop.location.id = ordinal;
  return prop;
}

cudaStream_t ToStream(StreamHandle stream) { return reinterpret_cast<cudaStream_t>(stream); }
cudaEvent_t ToEvent(EventHandle event) { return reinterpret_cast<cudaEvent_t>(event); }

absl::Status NoDevice(absl::string_view reason) {
  return absl::FailedPreconditionError(absl::StrCat("no CUDA device: ", reason));
}

absl::Status CheckEvent(EventHandle event, absl::string_view call) {
  if (event == 0) return absl::InvalidArgumentError(absl::StrCat(call, ": null event"));
  return absl::OkStatus();
}

}  // namespace

int CudaDeviceCount() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    static_cast<void>(cudaGetLastError());
    return 0;
  }
  return count;
}

absl::StatusOr<std::unique_ptr<CudaDevice>> CudaDevice::Open(int ordinal) {
  if (ordinal < 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("CudaDevice::Open: device ordinal %d is negative", ordinal));
  }
  int count = 0;
  if (absl::Status status = CudaRuntimeStatus(cudaGetDeviceCount(&count), "cudaGetDeviceCount");
      !status.ok()) {
    return NoDevice(status.message());
  }
  if (count == 0) return NoDevice("the driver reports no devices");
  if (ordinal >= count) {
    return absl::InvalidArgumentError(
        absl::StrFormat("CudaDevice::Open: device ordinal %d is out of range; %d device(s) present",
                        ordinal, count));
  }

  CudaDeviceScope scope(ordinal);  // also creates the primary context the driver calls use
  if (!scope.status().ok()) return scope.status();
  cudaDeviceProp properties = {};
  if (absl::Status status = CudaRuntimeStatus(cudaGetDeviceProperties(&properties, ordinal),
                                              "cudaGetDeviceProperties");
      !status.ok()) {
    return status;
  }

  if (absl::Status status = CudaRuntimeStatus(static_cast<cudaError_t>(kernels::LoadFillKernels()),
                                              "loading the fill kernels");
      !status.ok()) {
    return status;
  }

  absl::StatusOr<const CudaDriverApi*> driver = LoadCudaDriverApi();
  if (!driver.ok()) return NoDevice(driver.status().message());
  const CudaDriverApi& api = **driver;

  CUdevice cu_device = 0;
  if (absl::Status status = CudaDriverStatus(&api, api.device_get(&cu_device, ordinal),
                                             absl::StrFormat("cuDeviceGet(%d)", ordinal));
      !status.ok()) {
    return status;
  }
  int vmm_supported = 0;
  if (absl::Status status = CudaDriverStatus(
          &api,
          api.device_get_attribute(
              &vmm_supported, CU_DEVICE_ATTRIBUTE_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED, cu_device),
          "cuDeviceGetAttribute(VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED)");
      !status.ok()) {
    return status;
  }

  DeviceCapabilities capabilities;
  capabilities.ordinal = ordinal;
  capabilities.name = properties.name;
  capabilities.total_bytes = properties.totalGlobalMem;
  capabilities.vmm_supported = vmm_supported != 0;
  if (capabilities.vmm_supported) {
    const CUmemAllocationProp prop = PinnedDeviceMemory(ordinal);
    std::size_t granularity = 0;
    if (absl::Status status =
            CudaDriverStatus(&api,
                             api.mem_get_allocation_granularity(&granularity, &prop,
                                                                CU_MEM_ALLOC_GRANULARITY_MINIMUM),
                             "cuMemGetAllocationGranularity");
        !status.ok()) {
      return status;
    }
    capabilities.granularity = granularity;
  }
  return std::unique_ptr<CudaDevice>(new CudaDevice(std::move(capabilities), &api));
}

CudaDevice::CudaDevice(DeviceCapabilities capabilities, const CudaDriverApi* driver)
    : capabilities_(std::move(capabilities)), driver_(driver) {}

absl::StatusOr<DeviceMemInfo> CudaDevice::MemInfo() {
  CudaDeviceScope scope(capabilities_.ordinal);
  if (!scope.status().ok()) return scope.status();
  DeviceMemInfo info;
  if (absl::Status status =
          CudaRuntimeStatus(cudaMemGetInfo(&info.free_bytes, &info.total_bytes), "cudaMemGetInfo");
      !status.ok()) {
    return status;
  }
  return info;
}

absl::StatusOr<DevicePtr> CudaDevice::Malloc(std::size_t bytes) {
  if (bytes == 0) return absl::InvalidArgumentError("cudaMalloc: 0 bytes requested");
  CudaDeviceScope scope(capabilities_.ordinal);
  if (!scope.status().ok()) return scope.status();
  void* ptr = nullptr;
  // cudaMalloc is prohibited while any stream captures in global mode; growing a graph's
  // private pool during capture needs relaxed mode for this thread (as PyTorch does).
  cudaStreamCaptureMode mode = cudaStreamCaptureModeRelaxed;
  cudaThreadExchangeStreamCaptureMode(&mode);
  const cudaError_t error = cudaMalloc(&ptr, bytes);
  cudaThreadExchangeStreamCaptureMode(&mode);
  if (absl::Status status =
          CudaRuntimeStatus(error, absl::StrFormat("cudaMalloc(%u bytes)", bytes));
      !status.ok()) {
    return status;
  }
  return reinterpret_cast<DevicePtr>(ptr);
}

absl::Status CudaDevice::Free(DevicePtr ptr) {
  if (ptr == 0) return absl::OkStatus();  // like cudaFree(nullptr)
  CudaDeviceScope scope(capabilities_.ordinal);
  if (!scope.status().ok()) return scope.status();
  return CudaRuntimeStatus(cudaFree(reinterpret_cast<void*>(ptr)),
                           absl::StrFormat("cudaFree(0x%x)", ptr));
}

absl::Status CudaDevice::CheckVmmSupported(absl::string_view call) const {
  if (capabilities_.vmm_supported) return absl::OkStatus();
  return absl::FailedPreconditionError(
      absl::StrFormat("%s: device %d (%s) does not support virtual memory management", call,
                      capabilities_.ordinal, capabilities_.name));
}

absl::Status CudaDevice::CheckVmmSize(absl::string_view call, std::size_t bytes) const {
  if (absl::Status status = CheckVmmSupported(call); !status.ok()) return status;
  if (bytes == 0 || bytes % capabilities_.granularity != 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: %u bytes is not a positive multiple of the granularity (%u bytes)",
                        call, bytes, capabilities_.granularity));
  }
  return absl::OkStatus();
}

absl::Status CudaDevice::CheckVmmRange(absl::string_view call, DevicePtr va,
                                       std::size_t bytes) const {
  if (absl::Status status = CheckVmmSize(call, bytes); !status.ok()) return status;
  if (va == 0 || va % capabilities_.granularity != 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: address 0x%x is not a non-null multiple of the granularity (%u)", call,
                        va, capabilities_.granularity));
  }
  return absl::OkStatus();
}

absl::StatusOr<DevicePtr> CudaDevice::ReserveAddress(std::size_t bytes) {
  if (absl::Status status = CheckVmmSize("cuMemAddressReserve", bytes); !status.ok()) {
    return status;
  }
  CudaDeviceScope scope(capabilities_.ordinal);
  if (!scope.status().ok()) return scope.status();
  CUdeviceptr base = 0;
  if (absl::Status status = CudaDriverStatus(
          driver_, driver_->mem_address_reserve(&base, bytes, capabilities_.granularity, 0, 0),
          absl::StrFormat("cuMemAddressReserve(%u bytes)", bytes));
      !status.ok()) {
    return status;
  }
  return static_cast<DevicePtr>(base);
}

absl::Status CudaDevice::ReleaseAddress(DevicePtr base, std::size_t bytes) {
  if (absl::Status status = CheckVmmRange("cuMemAddressFree", base, bytes); !status.ok()) {
    return status;
  }
  CudaDeviceScope scope(capabilities_.ordinal);
  if (!scope.status().ok()) return scope.status();
  return CudaDriverStatus(driver_, driver_->mem_address_free(base, bytes),
                          absl::StrFormat("cuMemAddressFree(0x%x, %u bytes)", base, bytes));
}

absl::StatusOr<ChunkHandle> CudaDevice::CreateChunk(std::size_t bytes) {
  if (absl::Status status = CheckVmmSize("cuMemCreate", bytes); !status.ok()) return status;
  CudaDeviceScope scope(capabilities_.ordinal);
  if (!scope.status().ok()) return scope.status();
  const CUmemAllocationProp prop = PinnedDeviceMemory(capabilities_.ordinal);
  CUmemGenericAllocationHandle handle = 0;
  if (absl::Status status = CudaDriverStatus(driver_, driver_->mem_create(&handle, bytes, &prop, 0),
                                             absl::StrFormat("cuMemCreate(%u bytes)", bytes));
      !status.ok()) {
    return status;
  }
  return static_cast<ChunkHandle>(handle);
}

absl::Status CudaDevice::ReleaseChunk(ChunkHandle chunk) {
  if (absl::Status status = CheckVmmSupported("cuMemRelease"); !status.ok()) return status;
  if (chunk == 0) return absl::InvalidArgumentError("cuMemRelease: null chunk handle");
  CudaDeviceScope scope(capabilities_.ordinal);
  if (!scope.status().ok()) return scope.status();
  return CudaDriverStatus(driver_, driver_->mem_release(chunk),
                          absl::StrFormat("cuMemRelease(chunk 0x%x)", chunk));
}

absl::Status CudaDevice::SetAccess(DevicePtr va, std::size_t bytes, int ordinal,
                                   absl::string_view call) {
  CUmemAccessDesc access = {};
  access.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
  access.location.id = ordinal;
  access.flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
  return CudaDriverStatus(
      driver_, driver_->mem_set_access(va, bytes, &access, 1),
      absl::StrFormat("%s: cuMemSetAccess(0x%x, %u bytes, device %d)", call, va, bytes, ordinal));
}

absl::Status CudaDevice::Map(DevicePtr va, std::size_t bytes, ChunkHandle chunk) {
  if (absl::Status status = CheckVmmRange("cuMemMap", va, bytes); !status.ok()) return status;
  if (chunk == 0) return absl::InvalidArgumentError("cuMemMap: null chunk handle");
  CudaDeviceScope scope(capabilities_.ordinal);
  if (!scope.status().ok()) return scope.status();
  if (absl::Status status = CudaDriverStatus(
          driver_, driver_->mem_map(va, bytes, 0, chunk, 0),
          absl::StrFormat("cuMemMap(0x%x, %u bytes, chunk 0x%x)", va, bytes, chunk));
      !status.ok()) {
    return status;
  }
  if (absl::Status status = SetAccess(va, bytes, capabilities_.ordinal, "Map"); !status.ok()) {
    // A failed Map leaves nothing mapped.
    static_cast<void>(driver_->mem_unmap(va, bytes));
    return status;
  }
  return absl::OkStatus();
}

absl::Status CudaDevice::Unmap(DevicePtr va, std::size_t bytes) {
  if (absl::Status status = CheckVmmRange("cuMemUnmap", va, bytes); !status.ok()) return status;
  CudaDeviceScope scope(capabilities_.ordinal);
  if (!scope.status().ok()) return scope.status();
  return CudaDriverStatus(driver_, driver_->mem_unmap(va, bytes),
                          absl::StrFormat("cuMemUnmap(0x%x, %u bytes)", va, bytes));
}

absl::Status CudaDevice::GrantPeerAccess(DevicePtr va, std::size_t bytes, int peer_ordinal) {
  if (absl::Status status = CheckVmmRange("GrantPeerAccess", va, bytes); !status.ok()) {
    return status;
  }
  const int count = CudaDeviceCount();
  if (peer_ordinal < 0 || peer_ordinal >= count) {
    return absl::InvalidArgumentError(
        absl::StrFormat("GrantPeerAccess: peer ordinal %d is out of range; %d device(s) present",
                        peer_ordinal, count));
  }
  CudaDeviceScope scope(capabilities_.ordinal);
  if (!scope.status().ok()) return scope.status();
  return SetAccess(va, bytes, peer_ordinal, "GrantPeerAccess");
}

absl::StatusOr<EventHandle> CudaDevice::CreateEvent() {
  CudaDeviceScope scope(capabilities_.ordinal);
  if (!scope.status().ok()) return scope.status();
  cudaEvent_t event = nullptr;
  if (absl::Status status =
          CudaRuntimeStatus(cudaEventCreateWithFlags(&event, cudaEventDisableTiming),
                            "cudaEventCreateWithFlags(cudaEventDisableTiming)");
      !status.ok()) {
    return status;
  }
  return reinterpret_cast<EventHandle>(event);
}

absl::Status CudaDevice::DestroyEvent(EventHandle event) {
  if (absl::Status status = CheckEvent(event, "cudaEventDestroy"); !status.ok()) return status;
  CudaDeviceScope scope(capabilities_.ordinal);
  if (!scope.status().ok()) return scope.status();
  return CudaRuntimeStatus(cudaEventDestroy(ToEvent(event)), "cudaEventDestroy");
}

absl::Status CudaDevice::RecordEvent(EventHandle event, StreamHandle stream) {
  if (absl::Status status = CheckEvent(event, "cudaEventRecord"); !status.ok()) return status;
  CudaDeviceScope scope(capabilities_.ordinal);
  if (!scope.status().ok()) return scope.status();
  return CudaRuntimeStatus(cudaEventRecord(ToEvent(event), ToStream(stream)),
                           absl::StrFormat("cudaEventRecord(stream 0x%x)", stream));
}

absl::StatusOr<bool> CudaDevice::QueryEvent(EventHandle event) {
  if (absl::Status status = CheckEvent(event, "cudaEventQuery"); !status.ok()) return status;
  CudaDeviceScope scope(capabilities_.ordinal);
  if (!scope.status().ok()) return scope.status();
  const cudaError_t result = cudaEventQuery(ToEvent(event));
  if (result == cudaErrorNotReady) {
    static_cast<void>(cudaGetLastError());  // "not yet" is an answer, not an error to keep
    return false;
  }
  if (absl::Status status = CudaRuntimeStatus(result, "cudaEventQuery"); !status.ok()) {
    return status;
  }
  return true;
}

absl::Status CudaDevice::SynchronizeEvent(EventHandle event) {
  if (absl::Status status = CheckEvent(event, "cudaEventSynchronize"); !status.ok()) {
    return status;
  }
  CudaDeviceScope scope(capabilities_.ordinal);
  if (!scope.status().ok()) return scope.status();
  return CudaRuntimeStatus(cudaEventSynchronize(ToEvent(event)), "cudaEventSynchronize");
}

absl::Status CudaDevice::StreamWaitEvent(StreamHandle stream, EventHandle event) {
  if (absl::Status status = CheckEvent(event, "cudaStreamWaitEvent"); !status.ok()) {
    return status;
  }
  CudaDeviceScope scope(capabilities_.ordinal);
  if (!scope.status().ok()) return scope.status();
  return CudaRuntimeStatus(cudaStreamWaitEvent(ToStream(stream), ToEvent(event), 0),
                           absl::StrFormat("cudaStreamWaitEvent(stream 0x%x)", stream));
}

absl::Status CudaDevice::SynchronizeDevice() {
  CudaDeviceScope scope(capabilities_.ordinal);
  if (!scope.status().ok()) return scope.status();
  return CudaRuntimeStatus(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
}

absl::StatusOr<bool> CudaDevice::IsCapturing(StreamHandle stream) {
  CudaDeviceScope scope(capabilities_.ordinal);
  if (!scope.status().ok()) return scope.status();
  cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
  if (absl::Status status =
          CudaRuntimeStatus(cudaStreamGetCaptureInfo(ToStream(stream), &capture),
                            absl::StrFormat("cudaStreamGetCaptureInfo(stream 0x%x)", stream));
      !status.ok()) {
    return status;
  }
  // An invalidated capture is still a capture until cudaStreamEndCapture: the stream must not
  // be treated as ordinary work yet.
  return capture != cudaStreamCaptureStatusNone;
}

absl::StatusOr<int> CudaDevice::StreamOrdinal(StreamHandle stream) {
  // The legacy and per-thread default streams name whichever device is current: for the
  // allocator they are this device's.
  const auto handle = ToStream(stream);
  if (handle == nullptr || handle == cudaStreamLegacy || handle == cudaStreamPerThread) {
    return capabilities_.ordinal;
  }
  CudaDeviceScope scope(capabilities_.ordinal);
  if (!scope.status().ok()) return scope.status();
  int ordinal = -1;
  if (absl::Status status =
          CudaRuntimeStatus(cudaStreamGetDevice(handle, &ordinal),
                            absl::StrFormat("cudaStreamGetDevice(stream 0x%x)", stream));
      !status.ok()) {
    return status;
  }
  return ordinal;
}

Device::CaptureMode CudaDevice::ExchangeCaptureMode(CaptureMode mode) {
  cudaStreamCaptureMode cuda_mode = mode == CaptureMode::kRelaxed ? cudaStreamCaptureModeRelaxed
                                    : mode == CaptureMode::kThreadLocal
                                        ? cudaStreamCaptureModeThreadLocal
                                        : cudaStreamCaptureModeGlobal;
  // Thread-local state of the runtime: it cannot fail once the runtime is loaded, and when it
  // does (no driver) no capture can be under way either.
  if (cudaThreadExchangeStreamCaptureMode(&cuda_mode) != cudaSuccess) return CaptureMode::kGlobal;
  switch (cuda_mode) {
    case cudaStreamCaptureModeRelaxed:
      return CaptureMode::kRelaxed;
    case cudaStreamCaptureModeThreadLocal:
      return CaptureMode::kThreadLocal;
    default:
      return CaptureMode::kGlobal;
  }
}

absl::Status CudaDevice::Fill(const FillRequest& request, StreamHandle stream) {
  if (request.bytes == 0) return absl::OkStatus();
  if (request.ptr == 0 || request.ptr + request.bytes < request.ptr) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "Fill: [0x%x, +%u bytes) is not a device range", request.ptr, request.bytes));
  }
  CudaDeviceScope scope(capabilities_.ordinal);
  if (!scope.status().ok()) return scope.status();
  const int error = kernels::LaunchFillPattern32(reinterpret_cast<void*>(request.ptr),
                                                 request.bytes, request.pattern, stream);
  return CudaRuntimeStatus(
      static_cast<cudaError_t>(error),
      absl::StrFormat("fill kernel launch (0x%x, %u bytes, pattern 0x%08x, stream 0x%x)",
                      request.ptr, request.bytes, request.pattern, stream));
}

}  // namespace vramcache
