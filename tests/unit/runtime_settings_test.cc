// Settings changed while the allocator is in use (CachingAllocator::ApplyRuntimeSettings, what
// torch.cuda.memory._set_allocator_settings reaches): the next request follows the new
// settings, and what was counted under the old ones is undone exactly, so the oversize
// statistics recount to what is live.
#include "allocator/core/runtime_settings.h"

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "allocator/core/caching_allocator.h"
#include "allocator/device/sim_device.h"
#include "gtest/gtest.h"
#include "tests/support/allocator_fixture.h"

namespace vramcache {
namespace {

class RuntimeSettingsTest : public AllocatorTest<> {
 protected:
  void Open(const AllocatorConfig& config) {
    Make(SegmentModeSetup(std::size_t{8} << 30, config));  // PyTorch's segments
  }
  RuntimeSettings Settings() const { return RuntimeSettings::Of(allocator->config()); }
};

TEST_F(RuntimeSettingsTest, OversizeCountsUndoWhatTheyCountedWhenTheThresholdRises) {
  AllocatorConfig config;
  config.max_split_size = 32 * kMiB;
  Open(config);
  void* big = Alloc(64 * kMiB);
  EXPECT_EQ(allocator->GetStats().oversize_allocations.current, 1);
  EXPECT_EQ(allocator->GetStats().oversize_segments.current, 1);

  RuntimeSettings settings = Settings();
  settings.max_split_size = 128 * kMiB;  // the live block would not be oversize now
  ASSERT_TRUE(allocator->ApplyRuntimeSettings(settings).ok());
  EXPECT_EQ(allocator->GetStats().max_split_size, static_cast<std::int64_t>(128 * kMiB));
  EXPECT_EQ(allocator->config().max_split_size, 128 * kMiB);

  ASSERT_TRUE(allocator->Free(big).ok());
  EXPECT_EQ(allocator->GetStats().oversize_allocations.current, 0);
  ASSERT_TRUE(allocator->EmptyCache().ok());
  EXPECT_EQ(allocator->GetStats().oversize_segments.current, 0);
  EXPECT_EQ(allocator->GetStats().oversize_segments.peak, 1);
  EXPECT_TRUE(allocator->CheckInvariants().ok());
}

TEST_F(RuntimeSettingsTest, OversizeCountsStayWhenTheThresholdFallsUnderALiveBlock) {
  Open({});  // no max_split_size: nothing is oversize
  void* big = Alloc(64 * kMiB);
  RuntimeSettings settings = Settings();
  settings.max_split_size = 32 * kMiB;
  ASSERT_TRUE(allocator->ApplyRuntimeSettings(settings).ok());
  ASSERT_TRUE(allocator->Free(big).ok());
  ASSERT_TRUE(allocator->EmptyCache().ok());
  const DeviceStats stats = allocator->GetStats();
  EXPECT_EQ(stats.oversize_allocations.current, 0);
  EXPECT_EQ(stats.oversize_allocations.freed(), 0);
  EXPECT_EQ(stats.oversize_segments.current, 0);
  EXPECT_EQ(stats.oversize_segments.freed(), 0);

  // What is allocated from now on is counted by the new threshold.
  void* again = Alloc(64 * kMiB);
  EXPECT_EQ(allocator->GetStats().oversize_allocations.current, 1);
  EXPECT_EQ(allocator->GetStats().oversize_segments.current, 1);
  ASSERT_TRUE(allocator->Free(again).ok());
  EXPECT_EQ(allocator->GetStats().oversize_allocations.current, 0);
}

TEST_F(RuntimeSettingsTest, TheNextRequestFollowsTheNewSplitRule) {
  Open({});
  void* big = Alloc(64 * kMiB);
  ASSERT_TRUE(allocator->Free(big).ok());
  RuntimeSettings settings = Settings();
  settings.max_split_size = 32 * kMiB;  // the cached 64 MiB block may now serve only oversize
  ASSERT_TRUE(allocator->ApplyRuntimeSettings(settings).ok());
  void* small = Alloc(24 * kMiB);
  EXPECT_EQ(allocator->GetStats().segment.all().current, 2) << "the oversize block was split";
  ASSERT_TRUE(allocator->Free(small).ok());
}

TEST_F(RuntimeSettingsTest, TheNextRequestIsRoundedByTheNewDivisions) {
  Open({});
  const std::size_t request = 5 * kMiB + 1;
  void* before = Alloc(request);
  EXPECT_EQ(*allocator->AllocationSize(before), 5 * kMiB + 512);
  RuntimeSettings settings = Settings();
  settings.roundup_power2_divisions.assign(64, 0);
  settings.roundup_power2_divisions[22] = 4;  // [4 MiB, 8 MiB) in steps of 1 MiB
  ASSERT_TRUE(allocator->ApplyRuntimeSettings(settings).ok());
  void* after = Alloc(request);
  EXPECT_EQ(*allocator->AllocationSize(after), 6 * kMiB);
  ASSERT_TRUE(allocator->Free(before).ok());
  ASSERT_TRUE(allocator->Free(after).ok());
}

TEST_F(RuntimeSettingsTest, GarbageCollectionThresholdMovesTheSoftCap) {
  AllocatorConfig config;
  config.budget_bytes = 1024 * kMiB;
  Open(config);
  EXPECT_EQ(allocator->SoftBudget(), 0u);
  RuntimeSettings settings = Settings();
  settings.garbage_collection_threshold = 0.5;
  ASSERT_TRUE(allocator->ApplyRuntimeSettings(settings).ok());
  EXPECT_EQ(allocator->SoftBudget(), 512 * kMiB);  // a fraction of what may be reserved
  // The cap then follows the memory fraction, as PyTorch's threshold does.
  ASSERT_TRUE(allocator->SetMemoryFraction(0.0625).ok());  // 512 MiB of 8 GiB
  EXPECT_EQ(allocator->SoftBudget(), 256 * kMiB);
  settings.garbage_collection_threshold = 0.0;
  ASSERT_TRUE(allocator->ApplyRuntimeSettings(settings).ok());
  EXPECT_EQ(allocator->SoftBudget(), 0u);
}

// The threshold set at run time is the one the growth path obeys, not only the one reported:
// growing past it releases cached segments first.
TEST_F(RuntimeSettingsTest, GrowthObeysAThresholdSetAtRunTime) {
  AllocatorConfig config;
  config.budget_bytes = 1024 * kMiB;
  Open(config);
  std::vector<void*> held;
  for (int i = 0; i < 3; ++i) held.push_back(Alloc(100 * kMiB));
  for (void* p : held) ASSERT_TRUE(allocator->Free(p).ok());  // 300 MiB cached
  RuntimeSettings settings = Settings();
  settings.garbage_collection_threshold = 0.25;  // soft cap 256 MiB
  ASSERT_TRUE(allocator->ApplyRuntimeSettings(settings).ok());
  const std::int64_t releases_before = allocator->GetStats().num_cache_releases;
  void* big = Alloc(200 * kMiB);  // fits no cached segment: grows by 200 MiB
  const DeviceStats stats = allocator->GetStats();
  EXPECT_GT(stats.num_cache_releases, releases_before);
  EXPECT_LE(stats.reserved_bytes.all().current, static_cast<std::int64_t>(256 * kMiB));
  ASSERT_TRUE(allocator->Free(big).ok());
}

TEST_F(RuntimeSettingsTest, AnExplicitSoftBudgetIsNotMovedByTheThreshold) {
  AllocatorConfig config;
  config.soft_budget_bytes = 300 * kMiB;
  Open(config);
  RuntimeSettings settings = Settings();
  settings.garbage_collection_threshold = 0.5;
  ASSERT_TRUE(allocator->ApplyRuntimeSettings(settings).ok());
  EXPECT_EQ(allocator->SoftBudget(), 300 * kMiB);
}

TEST_F(RuntimeSettingsTest, RefusedAfterShutdown) {
  Open({});
  RuntimeSettings settings = Settings();
  ASSERT_TRUE(allocator->Shutdown().ok());
  const absl::Status status = allocator->ApplyRuntimeSettings(settings);
  EXPECT_FALSE(status.ok());
  EXPECT_NE(status.message().find("shut down"), std::string_view::npos) << status;
}

// The rounder is read without the lock: a change while other threads allocate must be race free
// (the tsan preset runs this) and every request still gets a valid, sufficient size.
TEST_F(RuntimeSettingsTest, ChangesWhileOtherThreadsAllocate) {
  Open({});
  std::atomic<bool> stop{false};
  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&, t] {
      std::size_t request = 3 * kMiB + 1000 * static_cast<std::size_t>(t + 1);
      while (!stop.load()) {
        absl::StatusOr<void*> p = allocator->Allocate(request, static_cast<StreamHandle>(t));
        if (!p.ok() || *allocator->AllocationSize(*p) < request) ++bad;
        if (p.ok() && !allocator->Free(*p).ok()) ++bad;
        request += 4096;
        if (request > 7 * kMiB) request = 3 * kMiB + 1;
      }
    });
  }
  RuntimeSettings settings = Settings();
  for (int i = 0; i < 200; ++i) {
    settings.roundup_power2_divisions.assign(64, 0);
    if (i % 2 == 0)
      settings.roundup_power2_divisions[21] = settings.roundup_power2_divisions[22] = 8;
    settings.max_split_size = i % 3 == 0 ? 32 * kMiB : SIZE_MAX;
    settings.garbage_collection_threshold = i % 4 == 0 ? 0.9 : 0.0;
    ASSERT_TRUE(allocator->ApplyRuntimeSettings(settings).ok());
  }
  stop = true;
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_TRUE(allocator->CheckInvariants().ok());
}

}  // namespace
}  // namespace vramcache
