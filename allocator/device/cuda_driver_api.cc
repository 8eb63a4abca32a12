// Fetches the driver entry points through the runtime (cudaGetDriverEntryPointByVersion), once.
#include "allocator/device/cuda_driver_api.h"

#include <cuda_runtime_api.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "allocator/device/cuda_status.h"

namespace vramcache {
namespace {

absl::string_view QueryResultText(cudaDriverEntryPointQueryResult result) {
  switch (result) {
    case cudaDriverEntryPointSuccess:
      return "found";
    case cudaDriverEntryPointSymbolNotFound:
      return "the driver has no such symbol";
    case cudaDriverEntryPointVersionNotSufficent:
      return "the driver is older than the requested version";
  }
  return "unknown query result";
}

template <typename Function>
absl::Status Fetch(const char* name, Function* function) {
  void* address = nullptr;
  cudaDriverEntryPointQueryResult query = cudaDriverEntryPointSymbolNotFound;
  const cudaError_t error = cudaGetDriverEntryPointByVersion(name, &address, kCudaDriverApiVersion,
                                                             cudaEnableDefault, &query);
  if (error != cudaSuccess) {
    const absl::Status status =
        CudaRuntimeStatus(error, absl::StrCat("cudaGetDriverEntryPointByVersion(", name, ")"));
    return absl::FailedPreconditionError(status.message());
  }
  if (query != cudaDriverEntryPointSuccess || address == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrFormat("driver entry point %s (CUDA %u ABI) is unavailable: %s", name,
                        kCudaDriverApiVersion, QueryResultText(query)));
  }
  *function = reinterpret_cast<Function>(address);
  return absl::OkStatus();
}

absl::StatusOr<CudaDriverApi> FetchAll() {
  CudaDriverApi api;
  // Error text first, so failures of the others can already be described.
  for (absl::Status status : {
           Fetch("cuGetErrorName", &api.get_error_name),
           Fetch("cuGetErrorString", &api.get_error_string),
           Fetch("cuDeviceGet", &api.device_get),
           Fetch("cuDeviceGetAttribute", &api.device_get_attribute),
           Fetch("cuMemAddressReserve", &api.mem_address_reserve),
           Fetch("cuMemAddressFree", &api.mem_address_free),
           Fetch("cuMemCreate", &api.mem_create),
           Fetch("cuMemRelease", &api.mem_release),
           Fetch("cuMemMap", &api.mem_map),
           Fetch("cuMemUnmap", &api.mem_unmap),
           Fetch("cuMemSetAccess", &api.mem_set_access),
           Fetch("cuMemGetAllocationGranularity", &api.mem_get_allocation_granularity),
       }) {
    if (!status.ok()) return status;
  }
  return api;
}

}  // namespace

absl::StatusOr<const CudaDriverApi*> LoadCudaDriverApi() {
  // Leaked on purpose: entry points stay valid for the life of the process, and allocators may
  // still release memory from static destructors.
  static const absl::StatusOr<CudaDriverApi>* const loaded =
      new absl::StatusOr<CudaDriverApi>(FetchAll());
  if (!loaded->ok()) return loaded->status();
  return &loaded->value();
}

}  // namespace vramcache
