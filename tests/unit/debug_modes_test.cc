// The debug modes wired into the caching allocator, on the simulated device with real memory:
// a planted out-of-bounds write is reported (at free and by CheckCanaries) with the right
// allocation and offset; freed memory reads as poison, also when record_stream defers the free;
// zero_on_alloc hands out zeros; bands survive splitting, coalescing, the reuse cache, borrowing
// between streams, stitching and EmptyCache; bad input stays a clean error.
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "allocator/core/caching_allocator.h"
#include "allocator/core/debug_guard.h"
#include "allocator/device/sim_device.h"
#include "gtest/gtest.h"
#include "tests/support/allocator_fixture.h"

namespace vramcache {
namespace {

class DebugModesTest : public AllocatorTest<::testing::TestWithParam<VmmMode>> {
 protected:
  void Make(bool canaries, bool poison, bool zero,
            SimCompletion completion = SimCompletion::kImmediate,
            std::size_t capacity = std::size_t{1} << 30) {
    AllocatorSetup setup;
    setup.device.capacity = capacity;
    setup.device.accounting_only = false;
    setup.device.completion = completion;
    setup.config.vmm = GetParam();
    setup.config.canaries = canaries;
    setup.config.poison_on_free = poison;
    setup.config.zero_on_alloc = zero;
    setup.config.record_history = true;
    AllocatorFixture::Make(setup);
  }
  void Write(void* at, std::size_t bytes, std::uint8_t value) {
    std::vector<std::uint8_t> data(bytes, value);
    ASSERT_TRUE(device->CopyFromHost(reinterpret_cast<DevicePtr>(at), data.data(), bytes).ok());
  }
  std::vector<std::uint8_t> Read(const void* at, std::size_t bytes) {
    std::vector<std::uint8_t> data(bytes);
    EXPECT_TRUE(device->CopyToHost(reinterpret_cast<DevicePtr>(at), data.data(), bytes).ok());
    return data;
  }
  static bool IsPoison(const std::vector<std::uint8_t>& bytes, std::size_t from_block_offset) {
    for (std::size_t i = 0; i < bytes.size(); ++i) {
      if (bytes[i] !=
          static_cast<std::uint8_t>(kPoisonPattern >> (8 * ((from_block_offset + i) % 4)))) {
        return false;
      }
    }
    return true;
  }
};

TEST_P(DebugModesTest, WritePastTheEndIsReportedAtFreeWithBlockAndOffset) {
  Make(/*canaries=*/true, false, false);
  void* p = Alloc(1000);
  ASSERT_EQ(reinterpret_cast<std::uintptr_t>(p) % 512, 0u) << "front band keeps the alignment";
  Write(p, 1000, 0x11);                          // in bounds: fine
  Write(static_cast<char*>(p) + 1003, 2, 0x00);  // 3 bytes past the end
  absl::Status freed = allocator->Free(p);
  ASSERT_TRUE(absl::IsDataLoss(freed)) << freed;
  const std::string report(freed.message());
  EXPECT_NE(report.find(
                absl::StrFormat("allocation %#x (1000 bytes", reinterpret_cast<std::uintptr_t>(p))),
            std::string::npos)
      << report;
  EXPECT_NE(report.find("offset +1003 (end + 3)"), std::string::npos) << report;
  EXPECT_NE(report.find("2 of"), std::string::npos) << report;
  EXPECT_NE(report.find("history entry"), std::string::npos) << report;
  // The memory was freed all the same.
  EXPECT_EQ(allocator->GetStats().allocation.all().current, 0);
  EXPECT_TRUE(absl::IsInvalidArgument(allocator->Free(p)));
}

TEST_P(DebugModesTest, WriteBeforeTheStartIsFoundByCheckCanaries) {
  Make(/*canaries=*/true, false, false);
  void* a = Alloc(4096);
  void* b = Alloc(3 * kMiB);
  void* c = Alloc(100);
  ASSERT_TRUE(allocator->CheckCanaries().ok());
  Write(static_cast<char*>(b) - 3, 1, 0xff);
  absl::Status checked = allocator->CheckCanaries();
  ASSERT_TRUE(absl::IsDataLoss(checked)) << checked;
  const std::string report(checked.message());
  EXPECT_NE(report.find("1 damaged band in 1 of 3 live allocations"), std::string::npos) << report;
  EXPECT_NE(report.find(absl::StrFormat("allocation %#x (3145728 bytes",
                                        reinterpret_cast<std::uintptr_t>(b))),
            std::string::npos)
      << report;
  EXPECT_NE(report.find("offset -3 (start - 3)"), std::string::npos) << report;
  EXPECT_TRUE(allocator->Free(a).ok());
  EXPECT_TRUE(absl::IsDataLoss(allocator->Free(b)));
  EXPECT_TRUE(allocator->Free(c).ok());
}

TEST_P(DebugModesTest, StatisticsCountBandsInAllocatedButNotInRequested) {
  Make(/*canaries=*/true, false, false);
  void* p = Alloc(1000);
  DeviceStats s = allocator->GetStats();
  EXPECT_EQ(s.requested_bytes.all().current, 1000);
  EXPECT_EQ(s.allocated_bytes.all().current, 512 + 1000 + 536);
  EXPECT_EQ(*allocator->AllocationSize(p), 2048u);
  ASSERT_TRUE(allocator->Free(p).ok());
}

TEST_P(DebugModesTest, BadPointersStayCleanErrors) {
  Make(/*canaries=*/true, true, false);
  void* p = Alloc(5000);
  EXPECT_TRUE(absl::IsInvalidArgument(allocator->Free(static_cast<char*>(p) + 1)));
  EXPECT_TRUE(absl::IsInvalidArgument(allocator->Free(static_cast<char*>(p) - 512)));
  EXPECT_TRUE(absl::IsInvalidArgument(allocator->RecordStream(static_cast<char*>(p) + 8, 3)));
  EXPECT_EQ(allocator->GetStats().allocation.all().current, 1);
  ASSERT_TRUE(allocator->Free(p).ok());
  EXPECT_TRUE(absl::IsInvalidArgument(allocator->Free(p)));
}

TEST_P(DebugModesTest, FreedMemoryReadsAsPoison) {
  Make(false, /*poison=*/true, false);
  void* p = Alloc(64 * 1024);
  Write(p, 64 * 1024, 0x42);
  ASSERT_TRUE(allocator->Free(p).ok());
  EXPECT_TRUE(IsPoison(Read(p, 64 * 1024), 0));
}

TEST_P(DebugModesTest, PoisonWaitsForTheOtherStreamsWork) {
  Make(false, /*poison=*/true, false, SimCompletion::kManual);
  constexpr StreamHandle kSide = 4;
  void* p = Alloc(8192);
  Write(p, 8192, 0x42);
  ASSERT_TRUE(allocator->RecordStream(p, kSide).ok());
  device->SubmitWork(kSide);  // a kernel on the side stream still reads p
  ASSERT_TRUE(allocator->Free(p).ok());
  EXPECT_EQ(Read(p, 8192), std::vector<std::uint8_t>(8192, 0x42)) << "poisoned while in use";
  device->CompleteAll();
  void* q = Alloc(100);  // the allocation path returns completed frees
  EXPECT_TRUE(IsPoison(Read(static_cast<char*>(p) + 4096, 4096), 4096));
  ASSERT_TRUE(allocator->Free(q).ok());
  device->CompleteAll();
}

TEST_P(DebugModesTest, ZeroOnAllocHandsOutZeros) {
  Make(false, false, /*zero=*/true);
  void* p = Alloc(3 * kMiB);
  Write(p, 3 * kMiB, 0xab);
  ASSERT_TRUE(allocator->Free(p).ok());
  void* q = Alloc(3 * kMiB);  // the same block, from the reuse cache
  EXPECT_EQ(q, p);
  EXPECT_EQ(Read(q, 3 * kMiB), std::vector<std::uint8_t>(3 * kMiB, 0));
  ASSERT_TRUE(allocator->Free(q).ok());
}

// Splits, coalesces, reuse-cache hits, borrowing between streams, EmptyCache and (in
// virtual-memory mode, on a small card) stitching: the bands stay intact through all of it.
TEST_P(DebugModesTest, BandsSurviveEveryLayoutChange) {
  Make(/*canaries=*/true, /*poison=*/true, /*zero=*/true, SimCompletion::kImmediate, 96 * kMiB);
  std::vector<void*> live;
  std::uint32_t state = 12345;
  auto next = [&state] { return state = state * 1664525u + 1013904223u; };
  for (int step = 0; step < 300; ++step) {
    if (live.size() < 12 && (live.empty() || next() % 3 != 0)) {
      const std::size_t size = next() % 4 == 0 ? (1 + next() % 12) * kMiB : 1 + next() % 200000;
      absl::StatusOr<void*> p = allocator->Allocate(size, next() % 2);
      if (!p.ok()) {
        ASSERT_TRUE(absl::IsResourceExhausted(p.status())) << p.status();
        continue;
      }
      Write(*p, size, static_cast<std::uint8_t>(step));  // every user byte, none outside
      live.push_back(*p);
    } else {
      const std::size_t i = next() % live.size();
      absl::Status freed = allocator->Free(live[i]);
      ASSERT_TRUE(freed.ok()) << "false positive at step " << step << ": " << freed;
      live[i] = live.back();
      live.pop_back();
    }
    if (step % 40 == 39) {
      ASSERT_TRUE(allocator->EmptyCache().ok());
    }
    if (step % 25 == 0) {
      absl::Status checked = allocator->CheckCanaries();
      ASSERT_TRUE(checked.ok()) << "false positive at step " << step << ": " << checked;
    }
  }
  for (void* p : live) ASSERT_TRUE(allocator->Free(p).ok());
  const DeviceStats s = allocator->GetStats();
  EXPECT_GT(s.num_cache_hits, 0);
  EXPECT_GT(s.inactive_split.all().allocated, 0) << "no block was ever split";
  if (GetParam() == VmmMode::kOn) {
    EXPECT_GT(s.num_stitches, 0) << "nothing was stitched";
  }
}

INSTANTIATE_TEST_SUITE_P(BothModes, DebugModesTest, ::testing::Values(VmmMode::kOff, VmmMode::kOn),
                         [](const ::testing::TestParamInfo<VmmMode>& info) {
                           return info.param == VmmMode::kOn ? "vmm" : "segments";
                         });

}  // namespace
}  // namespace vramcache
