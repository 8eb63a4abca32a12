// The CUDA driver entry points the backend needs (virtual memory, device attributes, error
// text), fetched at run time through the runtime's cudaGetDriverEntryPointByVersion. Nothing
// links libcuda.so, so every binary starts on a machine without a driver and says "no GPU".
#pragma once

#include <cudaTypedefs.h>

#include "absl/status/statusor.h"

namespace vramcache {

// ABI version the entry points are requested at: the signatures below are those of CUDA 12.0.
inline constexpr unsigned int kCudaDriverApiVersion = 12000;

struct CudaDriverApi {
  PFN_cuGetErrorName_v6000 get_error_name = nullptr;
  PFN_cuGetErrorString_v6000 get_error_string = nullptr;
  PFN_cuDeviceGet_v2000 device_get = nullptr;
  PFN_cuDeviceGetAttribute_v2000 device_get_attribute = nullptr;
  PFN_cuMemAddressReserve_v10020 mem_address_reserve = nullptr;
  PFN_cuMemAddressFree_v10020 mem_address_free = nullptr;
  PFN_cuMemCreate_v10020 mem_create = nullptr;
  PFN_cuMemRelease_v10020 mem_release = nullptr;
  PFN_cuMemMap_v10020 mem_map = nullptr;
  PFN_cuMemUnmap_v10020 mem_unmap = nullptr;
  PFN_cuMemSetAccess_v10020 mem_set_access = nullptr;
  PFN_cuMemGetAllocationGranularity_v10020 mem_get_allocation_granularity = nullptr;
};

// Fetches every entry point once per process (thread-safe); later calls return the same table
// or the same error. FailedPrecondition names the first entry point the driver lacks.
absl::StatusOr<const CudaDriverApi*> LoadCudaDriverApi();

}  // namespace vramcache
