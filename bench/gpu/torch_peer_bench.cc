// torch-peer-bench: PyTorch's native CUDA caching allocator (c10::cuda::CUDACachingAllocator)
// on the scenarios of vramcache-gpu-bench (bench/gpu/gpu_peers_bench.cc), so that its rows line
// up with that binary's `<scenario>/vramcache`, `/cudaMallocAsync`, `/cub` rows.
//
// It needs LibTorch's c10 and c10_cuda, which only the GPU machine's torch has, so it is not part
// of the CMake build: tests/gpu/run.sh compiles it there with the installed torch's headers and
// libraries (tests/gpu/torch_peer/build.sh), and Google Benchmark is not needed: a small timing
// loop (each case run for at least --min_time seconds, --repetitions times, the median printed)
// prints lines in Google Benchmark's console format:
//
//   gpu_fast_path/pytorch/4096/real_time/threads:8     3131 ns   ...   <iterations>
//
// Time is wall time per alloc+free pair as Google Benchmark computes it for threaded, real-time
// runs: the threads' mean wall time divided by the pairs of all threads. Without a GPU it says so
// and exits 0.
#include <c10/core/Allocator.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

namespace alloc = c10::cuda::CUDACachingAllocator;
using Clock = std::chrono::steady_clock;

constexpr int kMaxThreads = 16;

// One stream per thread (as vramcache-gpu-bench: non-blocking streams, created once), plus the
// cross-stream owner; non-blocking, like PyTorch's pool streams.
std::vector<c10::cuda::CUDAStream>& Streams() {
  static std::vector<c10::cuda::CUDAStream> streams = [] {
    std::vector<c10::cuda::CUDAStream> s;
    for (int i = 0; i <= kMaxThreads; ++i) {
      // Raw streams wrapped as external ones: getStreamFromPool needs the primary-context hook
      // that only libtorch_cuda registers, which this binary does not load.
      cudaStream_t raw = nullptr;
      cudaStreamCreateWithFlags(&raw, cudaStreamNonBlocking);
      s.push_back(c10::cuda::getStreamFromExternal(raw, /*device_index=*/0));
    }
    return s;
  }();
  return streams;
}

// Same size, same stream: after the first pair every pair is a cache hit.
void FastPathPairs(std::size_t size, int thread, long pairs) {
  cudaStream_t stream = Streams()[thread].stream();
  alloc::CUDAAllocator* a = alloc::get();
  for (long i = 0; i < pairs; ++i) {
    void* p = a->raw_alloc_with_stream(size, stream);
    asm volatile("" : : "r"(p) : "memory");  // as benchmark::DoNotOptimize
    a->raw_delete(p);
  }
}

// Allocated on the owner stream, recorded as used by a second one (record_stream), freed: the
// free records an event on the user stream, the next allocation queries it.
void CrossStreamPairs(std::size_t size, int /*thread*/, long pairs) {
  c10::cuda::CUDAStream owner = Streams()[kMaxThreads];
  c10::cuda::CUDAStream user = Streams()[0];
  alloc::CUDAAllocator* a = alloc::get();
  c10::cuda::CUDAStreamGuard guard(owner);  // allocate() takes the current stream
  for (long i = 0; i < pairs; ++i) {
    c10::DataPtr p = a->allocate(size);
    a->recordStream(p, user);
  }
}

using Body = void (*)(std::size_t, int, long);

std::mutex& ErrorMutex() {
  static std::mutex mu;
  return mu;
}
std::string& Error() {  // the first exception a worker saw in this case
  static std::string error;
  return error;
}

// Wall time of `pairs` pairs on each of `threads` threads, as Google Benchmark reports it.
double NanosPerPair(Body body, std::size_t size, int threads, long pairs) {
  std::vector<double> seconds(threads);
  std::atomic<int> ready{0};
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      c10::cuda::set_device(0);
      ready.fetch_add(1);
      while (ready.load() < threads) {
      }
      const auto start = Clock::now();
      try {
        body(size, t, pairs);
      } catch (const std::exception& e) {
        // A failing peer is reported as such; the other cases still run.
        std::lock_guard<std::mutex> lock(ErrorMutex());
        if (Error().empty()) Error() = e.what();
      }
      seconds[t] = std::chrono::duration<double>(Clock::now() - start).count();
    });
  }
  for (auto& w : workers) w.join();
  if (!Error().empty()) throw std::runtime_error(Error());
  double mean = 0;
  for (double s : seconds) mean += s / threads;
  return mean * 1e9 / (static_cast<double>(pairs) * threads);
}

struct Case {
  std::string name;
  Body body;
  std::size_t size;
  int threads;
};

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

}  // namespace

int main(int argc, char** argv) {
  double min_time = 0.05;
  int repetitions = 3;
  std::string filter;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&](const char* key) -> const char* {
      const std::string prefix = std::string(key) + "=";
      return arg.rfind(prefix, 0) == 0 ? argv[i] + prefix.size() : nullptr;
    };
    // --benchmark_min_time takes Google Benchmark's spellings ("0.05" or "0.05s").
    if (const char* v = value("--min_time"))
      min_time = std::atof(v);
    else if (const char* v = value("--benchmark_min_time"))
      min_time = std::atof(v);
    else if (const char* v = value("--repetitions"))
      repetitions = std::max(1, std::atoi(v));
    else if (const char* v = value("--benchmark_repetitions"))
      repetitions = std::max(1, std::atoi(v));
    else if (const char* v = value("--filter"))
      filter = v;
    else {
      std::fprintf(stderr,
                   "usage: %s [--min_time=SECONDS] [--repetitions=N] [--filter=SUBSTRING]\n",
                   argv[0]);
      return 2;
    }
  }
  if (c10::cuda::device_count() == 0) {
    std::printf("torch-peer-bench: no CUDA device; nothing to measure\n");
    return 0;
  }
  c10::cuda::set_device(0);
  alloc::init(c10::cuda::device_count());
  alloc::CUDAAllocator* a = alloc::get();
  std::printf(
      "torch-peer-bench: allocator '%s' (PyTorch's native caching allocator), "
      "min time %.3fs, median of %d\n",
      a->name().c_str(), min_time, repetitions);

  bool failed = false;
  std::vector<Case> cases;
  for (std::size_t size : {std::size_t{4096}, std::size_t{1} << 20}) {
    for (int threads : {1, 8, 16}) {
      cases.push_back({"gpu_fast_path/pytorch/" + std::to_string(size) +
                           "/real_time/threads:" + std::to_string(threads),
                       &FastPathPairs, size, threads});
    }
  }
  cases.push_back({"gpu_cross_stream/pytorch/1048576", &CrossStreamPairs, std::size_t{1} << 20, 1});

  std::printf("%-60s %13s %10s\n", "Benchmark", "Time", "Iterations");
  for (const Case& c : cases) {
    if (!filter.empty() && c.name.find(filter) == std::string::npos) continue;
    try {
      // Warm-up (the first pair reserves the segment), then pairs grown until min_time is met.
      NanosPerPair(c.body, c.size, c.threads, 16);
      long pairs = 64;
      double ns = 0;
      for (;;) {
        ns = NanosPerPair(c.body, c.size, c.threads, pairs);
        const double seconds = ns * pairs * c.threads / 1e9;
        if (seconds >= min_time || pairs >= (1L << 30)) break;
        pairs = std::max(pairs * 2,
                         static_cast<long>(pairs * min_time / std::max(seconds, 1e-9) * 1.2));
      }
      std::vector<double> runs{ns};
      for (int r = 1; r < repetitions; ++r) {
        runs.push_back(NanosPerPair(c.body, c.size, c.threads, pairs));
      }
      std::printf("%-60s %10.1f ns %10ld\n", c.name.c_str(), Median(runs), pairs * c.threads);
    } catch (const std::exception& e) {
      std::printf("%-60s ERROR %s\n", c.name.c_str(), e.what());
      Error().clear();
      failed = true;
    }
    std::fflush(stdout);
  }
  c10::cuda::device_synchronize();
  return failed ? 1 : 0;
}
