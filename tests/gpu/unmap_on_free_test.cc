// Debug mode unmap_on_free on a real GPU: a planted use after free. A probe (a child process,
// tests/gpu/debug_modes/probe.h) configures vramcache through the C API, allocates 4 MiB, writes
// it with a kernel, frees it, lets the free complete, and then launches a kernel that writes the
// freed pointer, under CUDA_LAUNCH_BLOCKING=1. With unmap_on_free the freed range is unmapped,
// so that write is an illegal address (a sticky error: the child prints "UAF_CAUGHT <error>" and
// exits); without it (the control run) the freed block is merely cached and the same write goes
// unnoticed ("UAF_SILENT"). The parent checks the outcome and that the failure came at the UAF
// kernel and nowhere before it. Skips without a GPU.
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>

#include "allocator/api/vramcache.h"
#include "allocator/device/cuda_device.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernels/fill.h"
#include "tests/gpu/debug_modes/probe.h"

namespace vramcache {
namespace {

using probe::Say;

constexpr char kProbeFilter[] = "DISABLED_UnmapOnFreeProbe.Run";
constexpr std::size_t kBytes = std::size_t{4} << 20;  // the large pool
constexpr std::size_t kCompanionBytes = 512;          // the small pool

long long UnmapCalls() {
  vramcache_stats stats{};
  stats.struct_size = sizeof(stats);
  return vramcache_get_stats(0, &stats) == 0 ? stats.num_unmap_calls : -1;
}

// What the child does. Modes: "uaf:unmap_on_free", "uaf:control", "selftest".
int RunProbe(const std::string& mode) {
  const char* blocking = std::getenv("CUDA_LAUNCH_BLOCKING");
  Say("PROBE_BEGIN %s CUDA_LAUNCH_BLOCKING=%s", mode.c_str(), blocking ? blocking : "(unset)");
  if (mode == "selftest") {
    std::fprintf(stderr, "PROBE_STDERR_LINE\n");
    Say("PROBE_END");
    return 7;
  }
  const bool unmap = mode == "uaf:unmap_on_free";
  if (!unmap && mode != "uaf:control") {
    Say("PROBE_ERROR unknown mode");
    return 2;
  }
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    Say("PROBE_SKIP no CUDA device");
    return 0;
  }
  auto fail = [](const char* what, const std::string& why) {
    Say("PROBE_ERROR %s: %s", what, why.c_str());
    return 2;
  };
  if (cudaSetDevice(0) != cudaSuccess) return fail("cudaSetDevice", "");

  const char* conf = unmap ? "unmap_on_free:on" : "unmap_on_free:off";
  Say("STEP configure %s", conf);
  if (vramcache_configure(conf) != 0) return fail("vramcache_configure", vramcache_last_error());
  Say("DONE configure %s", conf);

  // The companion is freed after the buffer, to make the allocator look at completed frees
  // again; allocated first, so that no allocation after the buffer's free needs a page (in the
  // default virtual-memory mode a new page may take the chunk of a freed one, unmapping it).
  Say("STEP malloc");
  void* ptr = vramcache_try_malloc(kBytes, 0, nullptr);
  if (ptr == nullptr) return fail("vramcache_try_malloc", vramcache_last_error());
  void* companion = vramcache_try_malloc(kCompanionBytes, 0, nullptr);
  if (companion == nullptr) return fail("vramcache_try_malloc", vramcache_last_error());
  Say("PTR %p", ptr);
  Say("DONE malloc");

  // The legitimate use: a kernel writes the whole buffer while it is live.
  Say("STEP write");
  int rc = kernels::LaunchFillPattern32(ptr, kBytes, 0x11111111u, 0);
  if (rc == cudaSuccess) rc = cudaDeviceSynchronize();
  if (rc != cudaSuccess) {
    return fail("write", cudaGetErrorName(static_cast<cudaError_t>(rc)));
  }
  Say("DONE write");

  Say("STEP free");
  vramcache_free(ptr, kBytes, 0, nullptr);
  if (vramcache_last_error()[0] != '\0') return fail("vramcache_free", vramcache_last_error());
  Say("DONE free");

  // The buffer's free has completed on the GPU; with unmap_on_free the next free (the
  // companion's) unmaps every free page whose last use is over, the buffer's included (its own
  // free may have done so already). In the control run it only caches the companion's block.
  Say("STEP settle");
  const long long unmaps_before = UnmapCalls();
  if (cudaDeviceSynchronize() != cudaSuccess) return fail("settle", "cudaDeviceSynchronize");
  vramcache_free(companion, kCompanionBytes, 0, nullptr);
  if (vramcache_last_error()[0] != '\0') return fail("companion free", vramcache_last_error());
  if (cudaDeviceSynchronize() != cudaSuccess) return fail("settle", "cudaDeviceSynchronize");
  Say("STAT unmap_calls %lld -> %lld", unmaps_before, UnmapCalls());
  cudaPointerAttributes attributes{};
  const cudaError_t asked = cudaPointerGetAttributes(&attributes, ptr);
  (void)cudaGetLastError();
  Say("STAT freed_pointer %s type %d", cudaGetErrorName(asked), static_cast<int>(attributes.type));
  Say("DONE settle");

  // The planted bug: a kernel writes the freed pointer.
  Say("STEP uaf_write");
  const int launched = kernels::LaunchFillPattern32(ptr, kBytes, 0xbad0bad0u, 0);
  const cudaError_t synchronized = cudaDeviceSynchronize();
  Say("STAT uaf_launch %s uaf_sync %s", cudaGetErrorName(static_cast<cudaError_t>(launched)),
      cudaGetErrorName(synchronized));
  const cudaError_t error =
      launched != cudaSuccess ? static_cast<cudaError_t>(launched) : synchronized;
  if (error == cudaSuccess) {
    Say("UAF_SILENT");
    Say("DONE uaf_write");
    Say("PROBE_END");
    return 0;
  }
  Say("UAF_CAUGHT %s", cudaGetErrorName(error));
  // Sticky: the context is lost, every later call fails the same way; nothing more to do.
  Say("AFTER_UAF %s", cudaGetErrorName(cudaDeviceSynchronize()));
  return 0;
}

// The child: disabled, so it only runs when RunSelf asks for it.
TEST(DISABLED_UnmapOnFreeProbe, Run) { probe::Exit(RunProbe(probe::Mode())); }

probe::ChildResult RunChild(const std::string& mode) {
  return probe::RunSelf(kProbeFilter,
                        {std::string(probe::kModeVariable) + "=" + mode, "CUDA_LAUNCH_BLOCKING=1"});
}

// --- Without a GPU (runs everywhere): the subprocess plumbing itself. -----------------------

TEST(UnmapOnFreeProbeHarnessTest, RunsTheProbeInAChildWithItsEnvironment) {
  const probe::ChildResult r = RunChild("selftest");
  ASSERT_TRUE(r.exited) << probe::Describe(r);
  EXPECT_EQ(r.exit_code, 7) << probe::Describe(r);
  const probe::ProbeOutput out(r.output);
  EXPECT_EQ(out.Find("PROBE_BEGIN"), "selftest CUDA_LAUNCH_BLOCKING=1") << r.output;
  EXPECT_GE(out.IndexOf("PROBE_STDERR_LINE"), 0) << "stderr is captured too";
  EXPECT_GT(out.IndexOf("PROBE_END"), out.IndexOf("PROBE_STDERR_LINE")) << "in order";
}

TEST(UnmapOnFreeProbeHarnessTest, FindsThePendingStep) {
  const probe::ProbeOutput out("STEP a\nDONE a\nSTEP b\nnoise\nUAF_CAUGHT x\n");
  EXPECT_EQ(out.PendingStep(), "b");
  EXPECT_EQ(out.PendingStep(out.IndexOf("STEP b")), "");
  EXPECT_EQ(out.Find("UAF_CAUGHT"), "x");
  EXPECT_EQ(out.Find("UAF"), std::nullopt);
}

// --- On a GPU ---------------------------------------------------------------------------------

class UnmapOnFreeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (CudaDeviceCount() == 0) GTEST_SKIP() << "no CUDA device";
  }
};

TEST_F(UnmapOnFreeTest, PlantedUseAfterFreeFaultsAtTheUafKernel) {
  const probe::ChildResult r = RunChild("uaf:unmap_on_free");
  ASSERT_TRUE(r.exited && r.exit_code == 0) << probe::Describe(r);
  const probe::ProbeOutput out(r.output);
  if (out.Find("PROBE_SKIP")) GTEST_SKIP() << *out.Find("PROBE_SKIP");
  ASSERT_EQ(out.Find("PROBE_ERROR"), std::nullopt) << probe::Describe(r);

  const std::optional<std::string> caught = out.Find("UAF_CAUGHT");
  ASSERT_TRUE(caught.has_value()) << "the write to the freed range went unnoticed; "
                                  << probe::Describe(r);
  EXPECT_EQ(*caught, "cudaErrorIllegalAddress") << probe::Describe(r);
  // Where it failed: every step before the UAF kernel completed, and that kernel did not.
  const int caught_line = out.IndexOf("UAF_CAUGHT " + *caught);
  EXPECT_EQ(out.PendingStep(caught_line), "uaf_write") << probe::Describe(r);
  for (const char* done : {"DONE configure unmap_on_free:on", "DONE malloc", "DONE write",
                           "DONE free", "DONE settle"}) {
    const int line = out.IndexOf(done);
    EXPECT_GE(line, 0) << done << " missing; " << probe::Describe(r);
    EXPECT_LT(line, caught_line) << done;
  }
  EXPECT_EQ(out.Find("AFTER_UAF"), "cudaErrorIllegalAddress")
      << "the error is sticky; " << probe::Describe(r);
  EXPECT_EQ(out.IndexOf("UAF_SILENT"), -1);
  std::printf("[ probe ] unmap_on_free: unmap calls %s; freed pointer %s; %s\n",
              out.Find("STAT unmap_calls").value_or("?").c_str(),
              out.Find("STAT freed_pointer").value_or("?").c_str(),
              out.Find("STAT uaf_launch").value_or("?").c_str());
}

TEST_F(UnmapOnFreeTest, WithoutUnmapOnFreeTheSameWriteGoesUnnoticed) {
  const probe::ChildResult r = RunChild("uaf:control");
  ASSERT_TRUE(r.exited && r.exit_code == 0) << probe::Describe(r);
  const probe::ProbeOutput out(r.output);
  if (out.Find("PROBE_SKIP")) GTEST_SKIP() << *out.Find("PROBE_SKIP");
  ASSERT_EQ(out.Find("PROBE_ERROR"), std::nullopt) << probe::Describe(r);
  EXPECT_GE(out.IndexOf("UAF_SILENT"), 0) << probe::Describe(r);
  EXPECT_EQ(out.Find("UAF_CAUGHT"), std::nullopt) << probe::Describe(r);
  EXPECT_GE(out.IndexOf("PROBE_END"), 0) << probe::Describe(r);
  EXPECT_EQ(out.PendingStep(), "");
}

}  // namespace
}  // namespace vramcache
