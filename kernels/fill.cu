// The fill kernel: a grid-stride loop of 16-byte stores over the aligned middle of the range,
// with the at most 15 unaligned bytes on each side written by single threads.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "kernels/fill.h"

namespace vramcache::kernels {
namespace {

constexpr unsigned kThreadsPerBlock = 256;
// Enough blocks to fill an H100 (132 SMs x 2048 threads) twice over; the grid-stride loop
// covers the rest, so a huge fill does not launch millions of blocks.
constexpr std::size_t kMaxBlocks = 2048;
constexpr std::size_t kVectorBytes = sizeof(uint4);

__device__ __forceinline__ unsigned char PatternByte(std::uint32_t pattern, std::size_t offset) {
  return static_cast<unsigned char>(pattern >> (8 * (offset % 4)));
}

// [dst, dst + head) is unaligned, then `vectors` 16-byte aligned vectors, then `tail` bytes.
// `body_word` is the pattern rotated so that it starts where the first vector does.
__global__ void FillKernel(unsigned char* dst, std::size_t head, std::size_t vectors,
                           std::size_t tail, std::uint32_t pattern, std::uint32_t body_word) {
  const std::size_t thread = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  if (thread < head) dst[thread] = PatternByte(pattern, thread);
  const std::size_t tail_start = head + vectors * kVectorBytes;
  if (thread < tail) dst[tail_start + thread] = PatternByte(pattern, tail_start + thread);
  const uint4 value = make_uint4(body_word, body_word, body_word, body_word);
  uint4* body = reinterpret_cast<uint4*>(dst + head);
  for (std::size_t i = thread; i < vectors; i += stride) body[i] = value;
}

std::uint32_t RotateRight(std::uint32_t word, unsigned bits) {
  return bits == 0 ? word : (word >> bits) | (word << (32 - bits));
}

}  // namespace

int LaunchFillPattern32(void* dst, std::size_t bytes, std::uint32_t pattern,
                        std::uintptr_t stream) {
  if (bytes == 0) return cudaSuccess;
  if (dst == nullptr) return cudaErrorInvalidValue;
  const std::uintptr_t address = reinterpret_cast<std::uintptr_t>(dst);
  const std::size_t head =
      std::min<std::size_t>(bytes, (kVectorBytes - address % kVectorBytes) % kVectorBytes);
  const std::size_t vectors = (bytes - head) / kVectorBytes;
  const std::size_t tail = bytes - head - vectors * kVectorBytes;
  // Little-endian: the byte at offset `head` is pattern byte head % 4, so the first vector's
  // word is the pattern rotated right by that many bytes.
  std::uint32_t body_word = RotateRight(pattern, static_cast<unsigned>(8 * (head % 4)));

  const std::size_t work = std::max({vectors, head, tail});
  const std::size_t blocks =
      std::clamp<std::size_t>((work + kThreadsPerBlock - 1) / kThreadsPerBlock, 1, kMaxBlocks);
  unsigned char* bytes_dst = static_cast<unsigned char*>(dst);
  std::size_t head_arg = head;
  std::size_t vectors_arg = vectors;
  std::size_t tail_arg = tail;
  void* args[] = {&bytes_dst, &head_arg, &vectors_arg, &tail_arg, &pattern, &body_word};
  // cudaLaunchKernel reports this launch's own error, unlike a later cudaGetLastError that
  // could return an earlier call's.
  return cudaLaunchKernel(FillKernel, dim3(static_cast<unsigned>(blocks)), dim3(kThreadsPerBlock),
                          args, 0, reinterpret_cast<cudaStream_t>(stream));
}

int LaunchZeroFill(void* dst, std::size_t bytes, std::uintptr_t stream) {
  return LaunchFillPattern32(dst, bytes, 0, stream);
}

int LoadFillKernels() {
  // Asking for a kernel's attributes loads its module, as a launch would.
  cudaFuncAttributes attributes;
  return cudaFuncGetAttributes(&attributes, FillKernel);
}

}  // namespace vramcache::kernels
