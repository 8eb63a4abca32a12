// Debug mode canaries on a real GPU: planted out-of-bounds kernel writes. A probe (a child
// process, tests/gpu/debug_modes/probe.h) configures vramcache with canaries through the C API,
// allocates three 1000-byte buffers, and with a kernel writes one byte past the end of the
// first (an off-by-one fill of 1001 bytes), one byte before the start of the second, and
// exactly the third. vramcache_check_canaries(0) must then return -1 naming both damaged bands
// by allocation and offset (and nothing about the third), and vramcache_free of the first must
// print its report to stderr and leave it in vramcache_last_error(). Run in the default
// (virtual-memory) mode and with vmm:off. Skips without a GPU.
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
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
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kProbeFilter[] = "DISABLED_CanariesProbe.Run";
constexpr std::size_t kUserBytes = 1000;

// Prints a message that may span lines between markers, so the parent gets it back whole.
void SayBlock(const char* name, const char* text) {
  Say("%s_BEGIN", name);
  Say("%s", text);
  Say("%s_END", name);
}

std::string Block(const probe::ProbeOutput& out, const std::string& name) {
  const int begin = out.IndexOf(name + "_BEGIN");
  const int end = out.IndexOf(name + "_END");
  if (begin < 0 || end < begin) return "";
  std::string text;
  for (int i = begin + 1; i < end; ++i) {
    if (!text.empty()) text += "\n";
    text += out.lines()[static_cast<std::size_t>(i)];
  }
  return text;
}

// What the child does; the mode is the configuration string.
int RunProbe(const std::string& conf) {
  Say("PROBE_BEGIN %s", conf.c_str());
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
  Say("STEP configure");
  if (vramcache_configure(conf.c_str()) != 0) {
    Say("PROBE_UNAVAILABLE vramcache_configure(%s): %s", conf.c_str(), vramcache_last_error());
    return 0;
  }
  Say("DONE configure");

  Say("STEP malloc");
  void* over = vramcache_try_malloc(kUserBytes, 0, nullptr);
  void* under = vramcache_try_malloc(kUserBytes, 0, nullptr);
  void* exact = vramcache_try_malloc(kUserBytes, 0, nullptr);
  if (over == nullptr || under == nullptr || exact == nullptr) {
    return fail("vramcache_try_malloc", vramcache_last_error());
  }
  Say("PTR over %p", over);
  Say("PTR under %p", under);
  Say("PTR exact %p", exact);
  Say("DONE malloc");

  Say("STEP check_clean");
  Say("CHECK_CLEAN %d", vramcache_check_canaries(0));
  SayBlock("CHECK_CLEAN_MESSAGE", vramcache_last_error());
  Say("DONE check_clean");

  // The planted bugs, each a fill kernel one byte too long on the legacy default stream.
  Say("STEP oob_writes");
  int rc = kernels::LaunchFillPattern32(over, kUserBytes + 1, 0x41414141u, 0);
  if (rc == cudaSuccess) {
    rc = kernels::LaunchFillPattern32(static_cast<unsigned char*>(under) - 1, kUserBytes + 1,
                                      0x42424242u, 0);
  }
  if (rc == cudaSuccess) rc = kernels::LaunchFillPattern32(exact, kUserBytes, 0x43434343u, 0);
  if (rc == cudaSuccess) rc = cudaDeviceSynchronize();
  if (rc != cudaSuccess) return fail("oob_writes", cudaGetErrorName(static_cast<cudaError_t>(rc)));
  Say("DONE oob_writes");

  Say("STEP check");
  Say("CHECK %d", vramcache_check_canaries(0));
  SayBlock("CHECK_MESSAGE", vramcache_last_error());
  Say("DONE check");

  // The free of a damaged allocation reports (stderr and last error) and frees all the same.
  for (auto [name, ptr] :
       {std::pair<const char*, void*>{"over", over}, {"under", under}, {"exact", exact}}) {
    Say("STEP free_%s", name);
    vramcache_free(ptr, kUserBytes, 0, nullptr);
    std::fflush(stderr);
    Say("FREE_%s_LAST_ERROR %s", name, vramcache_last_error());
    Say("DONE free_%s", name);
  }
  Say("STEP check_after_free");
  Say("CHECK_AFTER_FREE %d", vramcache_check_canaries(0));
  Say("DONE check_after_free");
  const cudaError_t error = cudaDeviceSynchronize();
  Say("CUDA_STATE %s", cudaGetErrorName(error));
  Say("PROBE_END");
  return 0;
}

// The child: disabled, so it only runs when RunSelf asks for it.
TEST(DISABLED_CanariesProbe, Run) { probe::Exit(RunProbe(probe::Mode())); }

// --- On a GPU ---------------------------------------------------------------------------------

class CanariesOobTest : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    if (CudaDeviceCount() == 0) GTEST_SKIP() << "no CUDA device";
  }
};

TEST_P(CanariesOobTest, PlantedOutOfBoundsWritesAreReportedWithTheirOffsets) {
  const probe::ChildResult r =
      probe::RunSelf(kProbeFilter, {std::string(probe::kModeVariable) + "=" + GetParam()});
  ASSERT_TRUE(r.exited && r.exit_code == 0) << probe::Describe(r);
  const probe::ProbeOutput out(r.output);
  if (out.Find("PROBE_SKIP")) GTEST_SKIP() << *out.Find("PROBE_SKIP");
  ASSERT_EQ(out.Find("PROBE_UNAVAILABLE"), std::nullopt)
      << "canaries refused: " << probe::Describe(r);
  ASSERT_EQ(out.Find("PROBE_ERROR"), std::nullopt) << probe::Describe(r);
  ASSERT_GE(out.IndexOf("PROBE_END"), 0) << probe::Describe(r);
  const std::string over = out.Find("PTR over").value_or("?");
  const std::string under = out.Find("PTR under").value_or("?");
  const std::string exact = out.Find("PTR exact").value_or("?");

  EXPECT_EQ(out.Find("CHECK_CLEAN"), "0") << Block(out, "CHECK_CLEAN_MESSAGE");

  // vramcache_check_canaries: both damaged bands, by allocation and offset; not the third.
  EXPECT_EQ(out.Find("CHECK"), "-1") << probe::Describe(r);
  const std::string message = Block(out, "CHECK_MESSAGE");
  EXPECT_THAT(message, HasSubstr("2 damaged bands in 2 of 3 live allocations"));
  EXPECT_THAT(message, HasSubstr("allocation " + over + " (1000 bytes"));
  EXPECT_THAT(message, HasSubstr("allocation " + under + " (1000 bytes"));
  EXPECT_THAT(message, Not(HasSubstr("allocation " + exact + " ")));
  // 0x41 written at +1000, where the back band's pattern 0x5afec0de begins (0xde); 0x42 at -1,
  // the last byte of the 512-byte front band (offset 511: 0x5a).
  EXPECT_THAT(message, HasSubstr("back band [+1000, "));
  EXPECT_THAT(message, HasSubstr("1 of "));
  EXPECT_THAT(message, HasSubstr("the lowest at offset +1000 (end + 0) holds 0x41, expected 0xde"));
  EXPECT_THAT(message, HasSubstr("front band [-512, 0) overwritten: 1 of 512 bytes differ; the "
                                 "lowest at offset -1 (start - 1) holds 0x42, expected 0x5a"));

  // vramcache_free's report: on stderr (before the probe's next line) and as the last error.
  const int free_line = out.IndexOf("STEP free_over");
  const int after_free_line = out.IndexOf("DONE free_over");
  ASSERT_TRUE(free_line >= 0 && after_free_line > free_line) << probe::Describe(r);
  std::string printed;
  for (int i = free_line + 1; i < after_free_line; ++i) {
    printed += out.lines()[static_cast<std::size_t>(i)] + "\n";
  }
  EXPECT_THAT(printed, HasSubstr("out-of-bounds write detected when freeing an allocation"));
  EXPECT_THAT(printed, HasSubstr("allocation " + over + " (1000 bytes"));
  EXPECT_THAT(printed, HasSubstr("offset +1000 (end + 0) holds 0x41, expected 0xde"));
  const std::string over_error = out.Find("FREE_over_LAST_ERROR").value_or("");
  EXPECT_THAT(over_error, HasSubstr("offset +1000 (end + 0) holds 0x41, expected 0xde"));
  EXPECT_THAT(out.Find("FREE_under_LAST_ERROR").value_or(""),
              HasSubstr("offset -1 (start - 1) holds 0x42, expected 0x5a"));
  EXPECT_EQ(out.Find("FREE_exact_LAST_ERROR"), "") << "an in-bounds write is clean";
  EXPECT_EQ(out.Find("CHECK_AFTER_FREE"), "0") << "freed allocations are no longer checked";
  EXPECT_EQ(out.Find("CUDA_STATE"), "cudaSuccess") << "no fault: the bands are mapped memory";
  std::printf("[ probe ] %s: vramcache_check_canaries said:\n%s\n", GetParam(), message.c_str());
}

INSTANTIATE_TEST_SUITE_P(Modes, CanariesOobTest,
                         ::testing::Values("canaries:on", "canaries:on,vmm:off"),
                         [](const ::testing::TestParamInfo<const char*>& info) {
                           return info.index == 0 ? std::string("DefaultMode")
                                                  : std::string("VmmOff");
                         });

}  // namespace
}  // namespace vramcache
