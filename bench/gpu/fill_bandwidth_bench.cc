// vramcache-fill-bench: the bandwidth of the fill kernel the debug modes use (kernels/fill.h:
// poison_on_free, canaries, zero_on_alloc) against the CUDA runtime's own ways of writing the
// same bytes, for 1 MiB, 64 MiB and 1 GiB:
//   fill/vramcache_kernel            LaunchFillPattern32 from a 16-byte aligned address
//   fill/vramcache_kernel_unaligned  the same from an address 3 bytes past alignment (an
//                                    unaligned head and tail, the middle still vector stores)
//   fill/cudaMemsetAsync             a byte memset (the bar: no pattern, the driver's kernel)
//   fill/d2d_copy                    cudaMemcpyAsync device to device of the same size (reads
//                                    as much as it writes; GB/s counts the bytes copied)
// Timed on the GPU with events around a batch of operations (manual time), so the rates are
// the device's, not the launch overhead's; 1 MiB batches 64 operations, and fits in L2, so its
// rate is the cache's. Without a GPU it says so and runs nothing (exit status 0).
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>

#include "benchmark/benchmark.h"
#include "kernels/fill.h"

namespace {

constexpr std::size_t kMiB = std::size_t{1} << 20;
constexpr std::size_t kMaxBytes = std::size_t{1} << 30;
constexpr std::size_t kSlack = 64;              // room for the unaligned variant's offset
constexpr std::uint32_t kPattern = 0x7fff7fff;  // the poison pattern

// Two device buffers of kMaxBytes + kSlack, made once: the destination and a copy's source.
struct Buffers {
  unsigned char* dst = nullptr;
  unsigned char* src = nullptr;
  cudaStream_t stream = nullptr;
  cudaEvent_t start = nullptr;
  cudaEvent_t stop = nullptr;
  std::string error;
};

Buffers& Get() {
  static Buffers* buffers = [] {
    auto* b = new Buffers;
    cudaError_t e = cudaStreamCreateWithFlags(&b->stream, cudaStreamNonBlocking);
    if (e == cudaSuccess) e = cudaEventCreate(&b->start);
    if (e == cudaSuccess) e = cudaEventCreate(&b->stop);
    if (e == cudaSuccess) e = cudaMalloc(reinterpret_cast<void**>(&b->dst), kMaxBytes + kSlack);
    if (e == cudaSuccess) e = cudaMalloc(reinterpret_cast<void**>(&b->src), kMaxBytes + kSlack);
    if (e == cudaSuccess) e = cudaMemsetAsync(b->src, 0x5a, kMaxBytes + kSlack, b->stream);
    if (e == cudaSuccess) e = cudaStreamSynchronize(b->stream);
    if (e != cudaSuccess) b->error = std::string("setup: ") + cudaGetErrorString(e);
    return b;
  }();
  return *buffers;
}

enum class Op { kKernel, kKernelUnaligned, kMemset, kCopy };

int Enqueue(Op op, const Buffers& b, std::size_t bytes) {
  const auto stream = reinterpret_cast<std::uintptr_t>(b.stream);
  switch (op) {
    case Op::kKernel:
      return vramcache::kernels::LaunchFillPattern32(b.dst, bytes, kPattern, stream);
    case Op::kKernelUnaligned:
      return vramcache::kernels::LaunchFillPattern32(b.dst + 3, bytes, kPattern, stream);
    case Op::kMemset:
      return cudaMemsetAsync(b.dst, 0xa5, bytes, b.stream);
    case Op::kCopy:
      return cudaMemcpyAsync(b.dst, b.src, bytes, cudaMemcpyDeviceToDevice, b.stream);
  }
  return cudaErrorInvalidValue;
}

void BM_Fill(benchmark::State& state, Op op, std::size_t bytes) {
  Buffers& b = Get();
  if (!b.error.empty()) {
    state.SkipWithError(b.error.c_str());
    return;
  }
  // Enough operations per timed batch that the events' resolution does not matter.
  const std::size_t batch = std::clamp<std::size_t>(64 * kMiB / bytes, 1, 64);
  int rc = Enqueue(op, b, bytes);  // warm-up: loads the module, touches the pages
  if (rc == cudaSuccess) rc = cudaStreamSynchronize(b.stream);
  for (auto _ : state) {
    if (rc == cudaSuccess) rc = cudaEventRecord(b.start, b.stream);
    for (std::size_t i = 0; i < batch && rc == cudaSuccess; ++i) rc = Enqueue(op, b, bytes);
    if (rc == cudaSuccess) rc = cudaEventRecord(b.stop, b.stream);
    if (rc == cudaSuccess) rc = cudaEventSynchronize(b.stop);
    float ms = 0;
    if (rc == cudaSuccess) rc = cudaEventElapsedTime(&ms, b.start, b.stop);
    if (rc != cudaSuccess) {
      state.SkipWithError(cudaGetErrorString(static_cast<cudaError_t>(rc)));
      break;
    }
    state.SetIterationTime(static_cast<double>(ms) * 1e-3);
  }
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(batch * bytes));
  state.counters["batch"] = static_cast<double>(batch);
}

void Register() {
  const struct {
    const char* name;
    Op op;
  } ops[] = {{"vramcache_kernel", Op::kKernel},
             {"vramcache_kernel_unaligned", Op::kKernelUnaligned},
             {"cudaMemsetAsync", Op::kMemset},
             {"d2d_copy", Op::kCopy}};
  const struct {
    const char* label;
    std::size_t bytes;
  } sizes[] = {{"1MiB", kMiB}, {"64MiB", 64 * kMiB}, {"1GiB", kMaxBytes}};
  for (const auto& size : sizes) {
    for (const auto& o : ops) {
      const Op op = o.op;
      const std::size_t bytes = size.bytes;
      benchmark::RegisterBenchmark(
          (std::string("fill/") + o.name + "/" + size.label).c_str(),
          [op, bytes](benchmark::State& state) { BM_Fill(state, op, bytes); })
          ->UseManualTime()
          ->Unit(benchmark::kMicrosecond);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("vramcache-fill-bench: no CUDA device; nothing to measure\n");
    return 0;
  }
  benchmark::Initialize(&argc, argv);
  Register();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
