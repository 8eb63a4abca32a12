// Saves, switches and restores the calling thread's current CUDA device.
#include "allocator/device/cuda_device_scope.h"

#include <cuda_runtime_api.h>

#include "absl/strings/str_cat.h"
#include "allocator/device/cuda_status.h"

namespace vramcache {

CudaDeviceScope::CudaDeviceScope(int ordinal) {
  status_ = CudaRuntimeStatus(cudaGetDevice(&previous_), "cudaGetDevice");
  if (!status_.ok() || previous_ == ordinal) return;
  status_ = CudaRuntimeStatus(cudaSetDevice(ordinal), absl::StrCat("cudaSetDevice(", ordinal, ")"));
  switched_ = status_.ok();
}

CudaDeviceScope::~CudaDeviceScope() {
  // Restoring a device that was current a moment ago cannot fail in a way the caller could act
  // on; the result of the scoped call is what matters.
  if (switched_) static_cast<void>(cudaSetDevice(previous_));
}

}  // namespace vramcache
