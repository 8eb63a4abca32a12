// CUDA error codes -> absl::Status with the call, the CUDA error name and its description.
#include "allocator/device/cuda_status.h"

#include "absl/strings/str_format.h"
#include "allocator/device/cuda_driver_api.h"

namespace vramcache {

absl::StatusCode CudaRuntimeErrorCode(cudaError_t error) {
  switch (error) {
    case cudaSuccess:
      return absl::StatusCode::kOk;
    case cudaErrorMemoryAllocation:
      return absl::StatusCode::kResourceExhausted;
    case cudaErrorInvalidValue:
    case cudaErrorInvalidDevice:
    case cudaErrorInvalidDevicePointer:
    case cudaErrorInvalidResourceHandle:
      return absl::StatusCode::kInvalidArgument;
    case cudaErrorNoDevice:
    case cudaErrorInsufficientDriver:
    case cudaErrorInitializationError:
    case cudaErrorNotSupported:
    case cudaErrorStreamCaptureUnsupported:
    case cudaErrorStreamCaptureInvalidated:
    case cudaErrorStreamCaptureImplicit:
      return absl::StatusCode::kFailedPrecondition;
    default:
      return absl::StatusCode::kInternal;
  }
}

absl::StatusCode CudaDriverErrorCode(CUresult result) {
  switch (result) {
    case CUDA_SUCCESS:
      return absl::StatusCode::kOk;
    case CUDA_ERROR_OUT_OF_MEMORY:
      return absl::StatusCode::kResourceExhausted;
    case CUDA_ERROR_INVALID_VALUE:
    case CUDA_ERROR_INVALID_DEVICE:
    case CUDA_ERROR_INVALID_HANDLE:
    case CUDA_ERROR_NOT_FOUND:
      return absl::StatusCode::kInvalidArgument;
    case CUDA_ERROR_NO_DEVICE:
    case CUDA_ERROR_NOT_INITIALIZED:
    case CUDA_ERROR_DEINITIALIZED:
    case CUDA_ERROR_NOT_SUPPORTED:
    case CUDA_ERROR_NOT_PERMITTED:
    case CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED:
      return absl::StatusCode::kFailedPrecondition;
    default:
      return absl::StatusCode::kInternal;
  }
}

absl::Status CudaRuntimeStatus(cudaError_t error, absl::string_view call) {
  if (error == cudaSuccess) return absl::OkStatus();
  // Clears the error this call left behind; a sticky error (a faulted context) stays, which is
  // right: every later call must keep failing.
  static_cast<void>(cudaGetLastError());
  return absl::Status(CudaRuntimeErrorCode(error),
                      absl::StrFormat("%s failed: %s (%s)", call, cudaGetErrorName(error),
                                      cudaGetErrorString(error)));
}

absl::Status CudaDriverStatus(const CudaDriverApi* api, CUresult result, absl::string_view call) {
  if (result == CUDA_SUCCESS) return absl::OkStatus();
  const char* name = nullptr;
  const char* description = nullptr;
  if (api != nullptr && api->get_error_name != nullptr) api->get_error_name(result, &name);
  if (api != nullptr && api->get_error_string != nullptr) {
    api->get_error_string(result, &description);
  }
  return absl::Status(
      CudaDriverErrorCode(result),
      absl::StrFormat("%s failed: %s (%s)", call,
                      name != nullptr ? name : absl::StrFormat("CUresult %d", result),
                      description != nullptr ? description : "no description from the driver"));
}

}  // namespace vramcache
