// Turns CUDA runtime and driver error codes into absl::Status values that name the failed call,
// the CUDA error name and its description, with a status code a caller can act on
// (out of memory -> ResourceExhausted). Only the CUDA backend's sources include this header.
#pragma once

#include <cuda.h>
#include <cuda_runtime_api.h>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace vramcache {

struct CudaDriverApi;

// OkStatus for cudaSuccess. A failure also clears the runtime's last-error slot, so a later
// launch check does not report this call's (non-sticky) error again.
absl::Status CudaRuntimeStatus(cudaError_t error, absl::string_view call);

// OkStatus for CUDA_SUCCESS. `api` supplies cuGetErrorName/cuGetErrorString; without it (or
// when those entry points are missing) the message carries only the numeric code.
absl::Status CudaDriverStatus(const CudaDriverApi* api, CUresult result, absl::string_view call);

// The absl code for a CUDA error; exposed so tests can pin the mapping down.
absl::StatusCode CudaRuntimeErrorCode(cudaError_t error);
absl::StatusCode CudaDriverErrorCode(CUresult result);

}  // namespace vramcache
