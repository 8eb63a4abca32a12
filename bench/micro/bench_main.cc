// The shared main of the benchmark binaries: Google Benchmark's flags, then ours
// (--trace_dir=DIR, where the shared traces are; by default the source tree's bench/traces,
// else ./bench/traces; --vramcache_conf=STRING, vramcache's settings in VRAMCACHE_CONF's
// syntax, vramcache_bench_settings.h). Exits non-zero when no benchmark matched or
// one failed, so the ctest smoke runs catch a scenario that stopped working.
#include "bench/micro/bench_main.h"

#include <cstdio>
#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>

#include "absl/status/status.h"
#include "allocator/base/mutex.h"
#include "bench/micro/bench_support.h"
#include "bench/micro/trace_library.h"
#include "bench/micro/vramcache_bench_settings.h"
#include "benchmark/benchmark.h"

namespace {

constexpr std::string_view kTraceDirFlag = "--trace_dir=";

bool IsDirectory(const std::string& path) {
  std::error_code error;
  return std::filesystem::is_directory(path, error);
}

std::string DefaultTraceDirectory() {
#ifdef VRAMCACHE_BENCH_TRACE_DIR
  if (IsDirectory(VRAMCACHE_BENCH_TRACE_DIR)) return VRAMCACHE_BENCH_TRACE_DIR;
#endif
  return "bench/traces";  // a copy of the tree elsewhere, run from its root
}

}  // namespace

int main(int argc, char** argv) {
  vramcache::ConfigureMutexDebugging();
  benchmark::Initialize(&argc, argv);
  std::string trace_dir = DefaultTraceDirectory();
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg(argv[i]);
    if (arg.starts_with(kTraceDirFlag)) {
      trace_dir = std::string(arg.substr(kTraceDirFlag.size()));
      if (!IsDirectory(trace_dir)) {
        std::fprintf(stderr, "%s: --trace_dir: \"%s\" is not a directory\n", argv[0],
                     trace_dir.c_str());
        return 2;
      }
    } else if (absl::Status status; vramcache::bench::ParseVramcacheBenchFlag(argv[i], &status)) {
      if (!status.ok()) {
        std::fprintf(stderr, "%s: %s\n", argv[0], std::string(status.message()).c_str());
        return 2;
      }
    } else {
      std::fprintf(stderr, "%s: unknown argument \"%s\" (see --help)\n", argv[0], argv[i]);
      return 2;
    }
  }
  vramcache::bench::SetTraceDirectory(trace_dir);
  benchmark::AddCustomContext("trace_dir", trace_dir);
  if (!vramcache::bench::VramcacheBenchConf().empty()) {
    benchmark::AddCustomContext("vramcache_conf", vramcache::bench::VramcacheBenchConf());
  }
  vramcache::bench::RegisterPeerBenchmarks();

  const std::size_t ran = benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  if (ran == 0) {
    std::fprintf(stderr, "%s: no benchmark matched the filter\n", argv[0]);
    return 1;
  }
  return vramcache::bench::AnyBenchmarkFailed() ? 1 : 0;
}
