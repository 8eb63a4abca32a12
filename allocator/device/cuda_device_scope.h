// Makes a CUDA device current for the life of a scope and restores the caller's device after,
// so a CudaDevice works from any thread whatever device that thread had selected. Cheap:
// cudaGetDevice reads thread-local state, and cudaSetDevice runs only when the device differs.
#pragma once

#include "absl/status/status.h"

namespace vramcache {

class CudaDeviceScope {
 public:
  explicit CudaDeviceScope(int ordinal);
  ~CudaDeviceScope();
  CudaDeviceScope(const CudaDeviceScope&) = delete;
  CudaDeviceScope& operator=(const CudaDeviceScope&) = delete;

  // Not OK when the device could not be made current; the caller must not go on.
  const absl::Status& status() const { return status_; }

 private:
  int previous_ = 0;
  bool switched_ = false;
  absl::Status status_;
};

}  // namespace vramcache
