// The spin kernel (spin_kernel.h): one thread per block waits for the release, the block then
// writes its share of the buffer. Few blocks, so that the spinning ones leave the device's other
// multiprocessors free for the kernels the scenarios run beside them.
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "tests/gpu/support/spin_kernel.h"

namespace vramcache::gpu_scenarios {
namespace {

constexpr unsigned kThreadsPerBlock = 256;
constexpr unsigned kBlocks = 8;

__global__ void SpinThenFillKernel(std::uint32_t* dst, std::size_t words, std::uint32_t pattern,
                                   const volatile std::uint32_t* release_flag,
                                   unsigned long long max_cycles) {
  if (threadIdx.x == 0) {
    const long long start = clock64();
    // volatile: every iteration reads the host's current value, not a cached one.
    while (*release_flag == 0 && static_cast<unsigned long long>(clock64() - start) < max_cycles) {
      __nanosleep(1000);  // polls the host less often; the wait itself is what matters
    }
  }
  __syncthreads();
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  for (std::size_t i = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < words;
       i += stride) {
    dst[i] = pattern;
  }
}

}  // namespace

int LaunchSpinThenFill(void* dst, std::size_t bytes, std::uint32_t pattern,
                       const std::uint32_t* release_flag, std::uint64_t max_cycles,
                       std::uintptr_t stream) {
  if (dst == nullptr || release_flag == nullptr || bytes % 4 != 0 ||
      reinterpret_cast<std::uintptr_t>(dst) % 4 != 0) {
    return cudaErrorInvalidValue;
  }
  std::uint32_t* words_dst = static_cast<std::uint32_t*>(dst);
  std::size_t words = bytes / 4;
  const volatile std::uint32_t* flag = release_flag;
  unsigned long long cycles = max_cycles;
  void* args[] = {&words_dst, &words, &pattern, &flag, &cycles};
  return cudaLaunchKernel(SpinThenFillKernel, dim3(kBlocks), dim3(kThreadsPerBlock), args, 0,
                          reinterpret_cast<cudaStream_t>(stream));
}

int LoadSpinKernel() {
  cudaFuncAttributes attributes;
  return cudaFuncGetAttributes(&attributes, SpinThenFillKernel);
}

}  // namespace vramcache::gpu_scenarios
