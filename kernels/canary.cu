// The verify kernel: every range cut into tiles of kVectorsPerTile 16-byte vectors, one grid
// striding over all tiles of all ranges, each mismatch folded into its range's answer with
// atomicMin (first offset) and atomicAdd (count). The host side validates the ranges, stages
// them in one stream-ordered allocation, launches once and copies the answers back.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels/canary.h"

namespace vramcache::kernels {
namespace {

constexpr unsigned kThreadsPerBlock = 256;
constexpr std::size_t kVectorsPerTile = kThreadsPerBlock * 8;  // 32 KiB per tile
constexpr std::size_t kMaxBlocks = 2048;                       // as the fill kernel
constexpr std::size_t kVectorBytes = sizeof(uint4);
// An answer is (offset << 8 | byte), so the smallest answer is the first differing byte.
constexpr unsigned long long kNoMismatch = ~0ull;

// One range as the kernel sees it: split like the fill kernel splits it, so the aligned middle
// is read with 16-byte loads and `body_word` is the pattern in phase with the first vector.
struct DeviceRange {
  const unsigned char* ptr;
  std::uint64_t head;
  std::uint64_t vectors;
  std::uint64_t tail;
  std::uint32_t pattern;
  std::uint32_t body_word;
};

__device__ __forceinline__ unsigned char PatternByte(std::uint32_t pattern, std::uint64_t offset) {
  return static_cast<unsigned char>(pattern >> (8 * (offset % 4)));
}

__device__ void Report(unsigned long long* first, unsigned long long* differing,
                       std::uint64_t offset, unsigned char found, unsigned count) {
  atomicMin(first, (static_cast<unsigned long long>(offset) << 8) | found);
  atomicAdd(differing, static_cast<unsigned long long>(count));
}

__device__ void CheckByte(const DeviceRange& range, std::uint64_t offset, unsigned long long* first,
                          unsigned long long* differing) {
  const unsigned char found = range.ptr[offset];
  if (found != PatternByte(range.pattern, offset)) Report(first, differing, offset, found, 1);
}

// The word at `offset` (a multiple of 4 from the range's first vector) against the body word:
// __vcmpne4 marks each differing byte with 0xff, so its lowest set bit is the first one.
__device__ void CheckWord(const DeviceRange& range, std::uint32_t word, std::uint64_t offset,
                          unsigned long long* first, unsigned long long* differing) {
  const unsigned diff = __vcmpne4(word, range.body_word);
  if (diff == 0) return;
  const unsigned first_byte = static_cast<unsigned>(__ffs(static_cast<int>(diff)) - 1) / 8;
  Report(first, differing, offset + first_byte,
         static_cast<unsigned char>(word >> (8 * first_byte)), __popc(diff) / 8);
}

__global__ void VerifyKernel(const DeviceRange* ranges, const std::uint64_t* tile_begin,
                             std::size_t count, std::uint64_t total_tiles,
                             unsigned long long* first, unsigned long long* differing) {
  for (std::uint64_t tile = blockIdx.x; tile < total_tiles; tile += gridDim.x) {
    // The range owning this tile: the last with tile_begin <= tile (empty ranges own none).
    std::size_t lo = 0;
    std::size_t hi = count;  // tile_begin[count] == total_tiles > tile
    while (hi - lo > 1) {
      const std::size_t mid = lo + (hi - lo) / 2;
      if (tile_begin[mid] <= tile) {
        lo = mid;
      } else {
        hi = mid;
      }
    }
    const DeviceRange range = ranges[lo];
    const std::uint64_t local_tile = tile - tile_begin[lo];
    if (local_tile == 0) {
      const std::uint64_t tail_start = range.head + range.vectors * kVectorBytes;
      if (threadIdx.x < range.head) CheckByte(range, threadIdx.x, first + lo, differing + lo);
      if (threadIdx.x < range.tail) {
        CheckByte(range, tail_start + threadIdx.x, first + lo, differing + lo);
      }
    }
    const uint4* body = reinterpret_cast<const uint4*>(range.ptr + range.head);
    const std::uint64_t begin = local_tile * kVectorsPerTile;
    const std::uint64_t end =
        begin + kVectorsPerTile < range.vectors ? begin + kVectorsPerTile : range.vectors;
    for (std::uint64_t v = begin + threadIdx.x; v < end; v += blockDim.x) {
      const uint4 value = body[v];
      const std::uint64_t offset = range.head + v * kVectorBytes;
      CheckWord(range, value.x, offset, first + lo, differing + lo);
      CheckWord(range, value.y, offset + 4, first + lo, differing + lo);
      CheckWord(range, value.z, offset + 8, first + lo, differing + lo);
      CheckWord(range, value.w, offset + 12, first + lo, differing + lo);
    }
  }
}

std::uint32_t RotateRight(std::uint32_t word, unsigned bits) {
  return bits == 0 ? word : (word >> bits) | (word << (32 - bits));
}

// Whether `address` lies in memory the device can read: device or managed memory, VMM mappings
// included. An address CUDA does not know is "unregistered", not an error, in CUDA 11 and later;
// an older runtime's error is taken back so it is not left for the caller's next check.
bool IsDeviceMemory(const void* address) {
  cudaPointerAttributes attributes;
  if (cudaPointerGetAttributes(&attributes, address) != cudaSuccess) {
    (void)cudaGetLastError();
    return false;
  }
  return attributes.type == cudaMemoryTypeDevice || attributes.type == cudaMemoryTypeManaged;
}

std::size_t AlignUp(std::size_t value, std::size_t alignment) {
  return (value + alignment - 1) / alignment * alignment;
}

}  // namespace

int VerifyPatterns32(const PatternRange* ranges, std::size_t count, PatternRangeResult* results,
                     std::uintptr_t stream, std::size_t* bad_range) {
  if (count == 0) return cudaSuccess;
  if (ranges == nullptr || results == nullptr) return cudaErrorInvalidValue;

  // Staging: the ranges, their first tiles (count + 1 entries) and the answers, in one buffer
  // so one allocation and one copy serve the launch.
  std::vector<DeviceRange> device_ranges(count);
  std::vector<std::uint64_t> tile_begin(count + 1, 0);
  for (std::size_t i = 0; i < count; ++i) {
    const PatternRange& range = ranges[i];
    const auto address = reinterpret_cast<std::uintptr_t>(range.ptr);
    std::uint64_t tiles = 0;
    if (range.bytes > 0) {
      const unsigned char* last = static_cast<const unsigned char*>(range.ptr) + range.bytes - 1;
      if (range.ptr == nullptr || address + range.bytes < address || !IsDeviceMemory(range.ptr) ||
          !IsDeviceMemory(last)) {
        if (bad_range != nullptr) *bad_range = i;
        return cudaErrorInvalidValue;
      }
      const std::size_t head =
          std::min(range.bytes, (kVectorBytes - address % kVectorBytes) % kVectorBytes);
      const std::size_t vectors = (range.bytes - head) / kVectorBytes;
      const std::size_t tail = range.bytes - head - vectors * kVectorBytes;
      device_ranges[i] = {
          static_cast<const unsigned char*>(range.ptr), head, vectors, tail, range.pattern,
          RotateRight(range.pattern, 8 * (head % 4))};
      tiles = std::max<std::uint64_t>(1, (vectors + kVectorsPerTile - 1) / kVectorsPerTile);
    } else {
      device_ranges[i] = {nullptr, 0, 0, 0, range.pattern, range.pattern};
    }
    tile_begin[i + 1] = tile_begin[i] + tiles;
  }
  const std::uint64_t total_tiles = tile_begin[count];
  for (std::size_t i = 0; i < count; ++i) results[i] = PatternRangeResult{};
  if (total_tiles == 0) return cudaSuccess;

  const std::size_t ranges_bytes = AlignUp(count * sizeof(DeviceRange), 16);
  const std::size_t tiles_bytes = AlignUp((count + 1) * sizeof(std::uint64_t), 16);
  const std::size_t answer_bytes = count * sizeof(unsigned long long);
  std::vector<unsigned char> staging(ranges_bytes + tiles_bytes + 2 * answer_bytes);
  std::memcpy(staging.data(), device_ranges.data(), count * sizeof(DeviceRange));
  std::memcpy(staging.data() + ranges_bytes, tile_begin.data(),
              tile_begin.size() * sizeof(std::uint64_t));
  std::vector<unsigned long long> answers(2 * count, 0);
  std::fill(answers.begin(), answers.begin() + static_cast<std::ptrdiff_t>(count), kNoMismatch);
  std::memcpy(staging.data() + ranges_bytes + tiles_bytes, answers.data(), 2 * answer_bytes);

  const auto cuda_stream = reinterpret_cast<cudaStream_t>(stream);
  void* buffer = nullptr;
  cudaError_t error = cudaMallocAsync(&buffer, staging.size(), cuda_stream);
  if (error != cudaSuccess) return error;
  auto* base = static_cast<unsigned char*>(buffer);
  error =
      cudaMemcpyAsync(buffer, staging.data(), staging.size(), cudaMemcpyHostToDevice, cuda_stream);
  if (error == cudaSuccess) {
    const auto* ranges_arg = reinterpret_cast<const DeviceRange*>(base);
    const auto* tiles_arg = reinterpret_cast<const std::uint64_t*>(base + ranges_bytes);
    auto* first_arg = reinterpret_cast<unsigned long long*>(base + ranges_bytes + tiles_bytes);
    unsigned long long* differing_arg = first_arg + count;
    std::size_t count_arg = count;
    std::uint64_t total_arg = total_tiles;
    void* args[] = {&ranges_arg, &tiles_arg, &count_arg, &total_arg, &first_arg, &differing_arg};
    const auto blocks = static_cast<unsigned>(std::min<std::uint64_t>(total_tiles, kMaxBlocks));
    error =
        cudaLaunchKernel(VerifyKernel, dim3(blocks), dim3(kThreadsPerBlock), args, 0, cuda_stream);
    if (error == cudaSuccess) {
      error = cudaMemcpyAsync(answers.data(), first_arg, 2 * answer_bytes, cudaMemcpyDeviceToHost,
                              cuda_stream);
    }
  }
  // Freed whatever happened above; the first error is the one reported.
  const cudaError_t free_error = cudaFreeAsync(buffer, cuda_stream);
  if (error == cudaSuccess) error = free_error;
  const cudaError_t sync_error = cudaStreamSynchronize(cuda_stream);
  if (error == cudaSuccess) error = sync_error;
  if (error != cudaSuccess) return error;

  for (std::size_t i = 0; i < count; ++i) {
    if (answers[i] == kNoMismatch) continue;
    results[i].intact = false;
    results[i].first_offset = static_cast<std::size_t>(answers[i] >> 8);
    results[i].found = static_cast<std::uint8_t>(answers[i] & 0xff);
    results[i].differing_bytes = static_cast<std::size_t>(answers[count + i]);
  }
  return cudaSuccess;
}

int LoadVerifyKernel() {
  cudaFuncAttributes attributes;
  return cudaFuncGetAttributes(&attributes, VerifyKernel);
}

}  // namespace vramcache::kernels
