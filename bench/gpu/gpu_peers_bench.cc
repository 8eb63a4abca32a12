// vramcache-gpu-bench: the host-side cost of an allocation on a real GPU, vramcache against the
// allocators a user would pick instead, in one binary and one run: cudaMalloc/cudaFree,
// cudaMallocAsync/cudaFreeAsync (a pool whose release threshold is at its maximum, so freed
// memory stays cached) and CUB's CachingDeviceAllocator. Scenarios: the same size allocated and
// freed on one stream (a cache hit), allocation on one stream and free after use by another,
// and 1/8/16 threads each on its own stream; and the device calls virtual-memory mode adds (a
// stitch, growth by one chunk). Without a GPU it says so and runs nothing.
#include <cuda_runtime_api.h>

#include <cstdio>
#include <cstdlib>
#include <cub/util_allocator.cuh>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "allocator/core/caching_allocator.h"
#include "allocator/device/cuda_device.h"
#include "benchmark/benchmark.h"

namespace vramcache {
namespace {

constexpr int kMaxThreads = 16;

// One stream per benchmark thread, created once.
cudaStream_t StreamFor(int thread) {
  static std::vector<cudaStream_t> streams = [] {
    std::vector<cudaStream_t> s(kMaxThreads + 1);
    for (auto& stream : s) cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking);
    return s;
  }();
  return streams[thread];
}

CudaDevice& Device() {
  static auto* device = [] {
    absl::StatusOr<std::unique_ptr<CudaDevice>> opened = CudaDevice::Open(0);
    if (!opened.ok()) {
      std::fprintf(stderr, "%s\n", std::string(opened.status().message()).c_str());
      std::exit(1);
    }
    return opened->release();
  }();
  return *device;
}

CachingAllocator& Vramcache() {
  static TickClock clock;
  static auto* allocator = new CachingAllocator(&Device(), AllocatorConfig{}, &clock);
  return *allocator;
}

void Check(const absl::Status& status, benchmark::State& state) {
  if (!status.ok()) state.SkipWithError(std::string(status.message()).c_str());
}

// What a stitch costs the host: one granularity-sized chunk unmapped from one range and mapped
// at another (cuMemUnmap + cuMemMap with its cuMemSetAccess), as virtual-memory mode does it.
void VmmStitch(benchmark::State& state) {
  CudaDevice& device = Device();
  const std::size_t granularity = device.Capabilities().granularity;
  absl::StatusOr<DevicePtr> from = device.ReserveAddress(granularity);
  absl::StatusOr<DevicePtr> to = device.ReserveAddress(granularity);
  absl::StatusOr<ChunkHandle> chunk = device.CreateChunk(granularity);
  if (!from.ok() || !to.ok() || !chunk.ok()) {
    state.SkipWithError("virtual memory unavailable");
    return;
  }
  Check(device.Map(*from, granularity, *chunk), state);
  for (auto _ : state) {
    Check(device.Unmap(*from, granularity), state);
    Check(device.Map(*to, granularity, *chunk), state);
    std::swap(*from, *to);
  }
  Check(device.Unmap(*from, granularity), state);
  Check(device.ReleaseChunk(*chunk), state);
  Check(device.ReleaseAddress(*from, granularity), state);
  Check(device.ReleaseAddress(*to, granularity), state);
  state.SetItemsProcessed(state.iterations());
}

// What growth by one chunk costs and giving it back: cuMemCreate + cuMemMap, then cuMemUnmap +
// cuMemRelease.
void VmmGrowRelease(benchmark::State& state) {
  CudaDevice& device = Device();
  const std::size_t granularity = device.Capabilities().granularity;
  absl::StatusOr<DevicePtr> va = device.ReserveAddress(granularity);
  if (!va.ok()) {
    state.SkipWithError("virtual memory unavailable");
    return;
  }
  for (auto _ : state) {
    absl::StatusOr<ChunkHandle> chunk = device.CreateChunk(granularity);
    if (!chunk.ok()) {
      state.SkipWithError(std::string(chunk.status().message()).c_str());
      break;
    }
    Check(device.Map(*va, granularity, *chunk), state);
    Check(device.Unmap(*va, granularity), state);
    Check(device.ReleaseChunk(*chunk), state);
  }
  Check(device.ReleaseAddress(*va, granularity), state);
  state.SetItemsProcessed(state.iterations());
}

cub::CachingDeviceAllocator& Cub() {
  // Bins at every power of two from 512 B to 2 GiB, nothing released: a caching setup.
  static auto* allocator = new cub::CachingDeviceAllocator(2, 9, 31, static_cast<size_t>(-1));
  return *allocator;
}

void EnableAsyncPoolCaching() {
  static std::once_flag once;
  std::call_once(once, [] {
    cudaMemPool_t pool;
    cudaDeviceGetDefaultMemPool(&pool, 0);
    std::uint64_t threshold = UINT64_MAX;
    cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &threshold);
  });
}

enum class Peer { kVramcache, kCudaMalloc, kCudaMallocAsync, kCub };

void* Allocate(Peer peer, std::size_t size, cudaStream_t stream) {
  void* p = nullptr;
  switch (peer) {
    case Peer::kVramcache:
      p = *Vramcache().Allocate(size, reinterpret_cast<StreamHandle>(stream));
      break;
    case Peer::kCudaMalloc:
      cudaMalloc(&p, size);
      break;
    case Peer::kCudaMallocAsync:
      cudaMallocAsync(&p, size, stream);
      break;
    case Peer::kCub:
      Cub().DeviceAllocate(&p, size, stream);
      break;
  }
  return p;
}

void Free(Peer peer, void* p, cudaStream_t stream) {
  switch (peer) {
    case Peer::kVramcache:
      (void)Vramcache().Free(p);
      break;
    case Peer::kCudaMalloc:
      cudaFree(p);
      break;
    case Peer::kCudaMallocAsync:
      cudaFreeAsync(p, stream);
      break;
    case Peer::kCub:
      Cub().DeviceFree(p);
      break;
  }
}

// Same size, same stream: every pair after the first is a cache hit for the caching peers.
void FastPath(benchmark::State& state, Peer peer) {
  EnableAsyncPoolCaching();
  const auto size = static_cast<std::size_t>(state.range(0));
  cudaStream_t stream = StreamFor(state.thread_index());
  Free(peer, Allocate(peer, size, stream), stream);
  for (auto _ : state) {
    void* p = Allocate(peer, size, stream);
    benchmark::DoNotOptimize(p);
    Free(peer, p, stream);
  }
  state.SetItemsProcessed(state.iterations());
}

// Allocated on one stream, used by a second (record_stream for vramcache, an event wait for
// the async pool, nothing for CUB, which has no notion of it), freed, allocated again.
void CrossStream(benchmark::State& state, Peer peer) {
  EnableAsyncPoolCaching();
  const auto size = static_cast<std::size_t>(state.range(0));
  cudaStream_t owner = StreamFor(kMaxThreads);
  cudaStream_t user = StreamFor(0);
  for (auto _ : state) {
    void* p = Allocate(peer, size, owner);
    if (peer == Peer::kVramcache) {
      (void)Vramcache().RecordStream(p, reinterpret_cast<StreamHandle>(user));
    }
    Free(peer, p, owner);
  }
  state.SetItemsProcessed(state.iterations());
}

void Register() {
  benchmark::RegisterBenchmark("gpu_vmm/stitch_one_chunk", VmmStitch);
  benchmark::RegisterBenchmark("gpu_vmm/grow_and_release_one_chunk", VmmGrowRelease);
  struct Named {
    const char* name;
    Peer peer;
  };
  const Named peers[] = {{"vramcache", Peer::kVramcache},
                         {"cudaMallocAsync", Peer::kCudaMallocAsync},
                         {"cub", Peer::kCub},
                         {"cudaMalloc", Peer::kCudaMalloc}};
  for (const Named& p : peers) {
    benchmark::RegisterBenchmark((std::string("gpu_fast_path/") + p.name).c_str(), FastPath, p.peer)
        ->Arg(4096)
        ->Arg(1 << 20)
        ->Threads(1)
        ->Threads(8)
        ->Threads(16)
        ->UseRealTime();
    benchmark::RegisterBenchmark((std::string("gpu_cross_stream/") + p.name).c_str(), CrossStream,
                                 p.peer)
        ->Arg(1 << 20);
  }
}

}  // namespace
}  // namespace vramcache

int main(int argc, char** argv) {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("vramcache-gpu-bench: no CUDA device; nothing to measure\n");
    return 0;
  }
  benchmark::Initialize(&argc, argv);
  vramcache::Register();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
