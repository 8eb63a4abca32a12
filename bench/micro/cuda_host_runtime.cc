// The CUDA runtime stand-in (see cuda_host_runtime.h): the runtime entry points CUB's caching
// allocator and the CUB adapter call, defined on the simulated device. Only device 0 exists;
// handles are the SimDevice's integers carried in CUDA's pointer types.
#include "bench/micro/cuda_host_runtime.h"

#include <cuda_runtime_api.h>

#include <cstdint>

#include "absl/status/status.h"
#include "bench/micro/bench_device.h"

namespace vramcache::bench {

SimDevice& HostRuntimeDevice() {
  // Leaked on purpose: CUB allocators held in static storage free through it at exit.
  static SimDevice* const device = new SimDevice(BenchSimDeviceOptions());
  return *device;
}

namespace {

thread_local cudaError_t last_error = cudaSuccess;
thread_local int current_device = 0;

// The error the runtime would give for a failed device call; it also becomes the last error,
// as in CUDA.
cudaError_t Fail(const absl::Status& status) {
  cudaError_t error = cudaErrorUnknown;
  switch (status.code()) {
    case absl::StatusCode::kResourceExhausted:
      error = cudaErrorMemoryAllocation;
      break;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kNotFound:
      error = cudaErrorInvalidValue;
      break;
    default:
      break;
  }
  last_error = error;
  return error;
}

cudaError_t Check(const absl::Status& status) { return status.ok() ? cudaSuccess : Fail(status); }

StreamHandle ToHandle(cudaStream_t stream) { return reinterpret_cast<StreamHandle>(stream); }
EventHandle ToHandle(cudaEvent_t event) { return reinterpret_cast<EventHandle>(event); }

}  // namespace

}  // namespace vramcache::bench

using vramcache::bench::Check;
using vramcache::bench::Fail;
using vramcache::bench::HostRuntimeDevice;
using vramcache::bench::ToHandle;

extern "C" {

cudaError_t cudaMalloc(void** dev_ptr, size_t size) {
  if (dev_ptr == nullptr) return Fail(absl::InvalidArgumentError("cudaMalloc: null dev_ptr"));
  if (size == 0) {  // CUDA hands out nullptr for nothing; SimDevice refuses zero bytes
    *dev_ptr = nullptr;
    return cudaSuccess;
  }
  absl::StatusOr<vramcache::DevicePtr> ptr = HostRuntimeDevice().Malloc(size);
  if (!ptr.ok()) return Fail(ptr.status());
  *dev_ptr = reinterpret_cast<void*>(*ptr);
  return cudaSuccess;
}

cudaError_t cudaFree(void* dev_ptr) {
  return Check(HostRuntimeDevice().Free(reinterpret_cast<vramcache::DevicePtr>(dev_ptr)));
}

cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned int /*flags*/) {
  if (event == nullptr) {
    return Fail(absl::InvalidArgumentError("cudaEventCreateWithFlags: null event"));
  }
  absl::StatusOr<vramcache::EventHandle> handle = HostRuntimeDevice().CreateEvent();
  if (!handle.ok()) return Fail(handle.status());
  *event = reinterpret_cast<cudaEvent_t>(*handle);
  return cudaSuccess;
}

cudaError_t cudaEventDestroy(cudaEvent_t event) {
  return Check(HostRuntimeDevice().DestroyEvent(ToHandle(event)));
}

cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream) {
  return Check(HostRuntimeDevice().RecordEvent(ToHandle(event), ToHandle(stream)));
}

cudaError_t cudaEventQuery(cudaEvent_t event) {
  absl::StatusOr<bool> complete = HostRuntimeDevice().QueryEvent(ToHandle(event));
  if (!complete.ok()) return Fail(complete.status());
  return *complete ? cudaSuccess : cudaErrorNotReady;  // not ready is no error in CUDA either
}

cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned int /*flags*/) {
  return Check(HostRuntimeDevice().StreamWaitEvent(ToHandle(stream), ToHandle(event)));
}

cudaError_t cudaGetDevice(int* device) {
  if (device == nullptr) return Fail(absl::InvalidArgumentError("cudaGetDevice: null device"));
  *device = vramcache::bench::current_device;
  return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) {
  if (device != 0) {
    vramcache::bench::last_error = cudaErrorInvalidDevice;
    return cudaErrorInvalidDevice;
  }
  vramcache::bench::current_device = device;
  return cudaSuccess;
}

cudaError_t cudaGetLastError(void) {
  const cudaError_t error = vramcache::bench::last_error;
  vramcache::bench::last_error = cudaSuccess;
  return error;
}

const char* cudaGetErrorString(cudaError_t error) {
  switch (error) {
    case cudaSuccess:
      return "no error";
    case cudaErrorMemoryAllocation:
      return "out of memory (host stand-in)";
    case cudaErrorInvalidValue:
      return "invalid argument (host stand-in)";
    case cudaErrorInvalidDevice:
      return "invalid device ordinal (host stand-in)";
    case cudaErrorNotReady:
      return "device not ready (host stand-in)";
    default:
      return "unknown error (host stand-in)";
  }
}

}  // extern "C"
