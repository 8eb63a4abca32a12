// SpinRelease (spin_release.h): the host-mapped flag and its timer thread.
#include "tests/gpu/support/spin_release.h"

#include <cuda_runtime_api.h>

namespace vramcache::gpu_scenarios {

SpinRelease::SpinRelease() {
  void* host = nullptr;
  if (cudaHostAlloc(&host, sizeof(std::uint32_t), cudaHostAllocMapped) != cudaSuccess) return;
  host_flag_ = static_cast<std::uint32_t*>(host);
  __atomic_store_n(host_flag_, 0u, __ATOMIC_RELEASE);
  void* device = nullptr;
  if (cudaHostGetDevicePointer(&device, host, 0) != cudaSuccess) return;
  device_flag_ = static_cast<const std::uint32_t*>(device);
}

SpinRelease::~SpinRelease() {
  if (timer_.joinable()) timer_.join();
  if (host_flag_ == nullptr) return;
  ReleaseNow();
  // A kernel may still poll the flag: freeing it under the kernel would be a fault of its own.
  cudaDeviceSynchronize();
  cudaFreeHost(host_flag_);
}

void SpinRelease::ReleaseAfter(std::chrono::milliseconds delay) {
  if (timer_.joinable()) return;
  timer_ = std::thread([this, delay] {
    std::this_thread::sleep_for(delay);
    ReleaseNow();
  });
}

void SpinRelease::ReleaseNow() {
  if (host_flag_ != nullptr) __atomic_store_n(host_flag_, 1u, __ATOMIC_RELEASE);
}

}  // namespace vramcache::gpu_scenarios
