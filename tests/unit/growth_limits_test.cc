// Limits and the growth gate against their interface: where the budget and the soft budget come
// from, the fraction's cap, the gate counting bytes in flight, and the page check of
// virtual-memory mode.
#include "allocator/core/growth_limits.h"

#include <cstdint>

#include "allocator/core/config.h"
#include "gtest/gtest.h"

namespace vramcache {
namespace {

constexpr std::size_t kTotal = 1024 * kMiB;

TEST(GrowthLimitsTest, NoLimitsByDefault) {
  GrowthLimits limits(AllocatorConfig{}, kTotal);
  EXPECT_EQ(limits.budget(), 0u);
  EXPECT_EQ(limits.soft_budget(), 0u);
  EXPECT_EQ(limits.Headroom(512 * kMiB), SIZE_MAX);
  EXPECT_TRUE(limits.BeginGrowth(kTotal, kTotal).ok());  // the device decides, not the gate
}

TEST(GrowthLimitsTest, FractionCapsTheBudgetButNeverAboveTheConfiguredBytes) {
  AllocatorConfig config;
  config.per_process_memory_fraction = 0.5;
  EXPECT_EQ(GrowthLimits(config, kTotal).budget(), 512 * kMiB);
  config.budget_bytes = 100 * kMiB;
  GrowthLimits limits(config, kTotal);
  EXPECT_EQ(limits.budget(), 100 * kMiB);
  EXPECT_EQ(limits.CapForFraction(0.05), static_cast<std::size_t>(0.05 * kTotal));
  EXPECT_EQ(limits.CapForFraction(1.0), 100 * kMiB);
  // A fraction of 0 means that nothing fits, not "no cap".
  EXPECT_EQ(limits.CapForFraction(0.0), 1u);
}

TEST(GrowthLimitsTest, SoftBudgetSources) {
  AllocatorConfig config;
  config.garbage_collection_threshold = 0.5;
  EXPECT_EQ(GrowthLimits(config, kTotal).soft_budget(), 512 * kMiB);
  config.budget_bytes = 200 * kMiB;  // the threshold is a fraction of what may be used
  EXPECT_EQ(GrowthLimits(config, kTotal).soft_budget(), 100 * kMiB);
  config.soft_budget_fraction = 0.25;
  EXPECT_EQ(GrowthLimits(config, kTotal).soft_budget(), 256 * kMiB);
  config.soft_budget_bytes = 64 * kMiB;
  GrowthLimits limits(config, kTotal);
  EXPECT_EQ(limits.soft_budget(), 64 * kMiB);
  EXPECT_EQ(limits.SoftExcess(40 * kMiB, 20 * kMiB), 0u);
  EXPECT_EQ(limits.SoftExcess(40 * kMiB, 30 * kMiB), 6 * kMiB);
}

// garbage_collection_threshold is a fraction of what may be reserved: it follows a fraction's
// cap and a change of the threshold at run time, not SetBudget (as the allocator did).
TEST(GrowthLimitsTest, TheThresholdsSoftBudgetFollowsTheFractionAndTheThreshold) {
  AllocatorConfig config;
  config.garbage_collection_threshold = 0.5;
  GrowthLimits limits(config, kTotal);
  limits.SetFractionCap(200 * kMiB);
  EXPECT_EQ(limits.budget(), 200 * kMiB);
  EXPECT_EQ(limits.soft_budget(), 100 * kMiB);
  limits.SetGarbageCollectionThreshold(0.25);
  EXPECT_EQ(limits.soft_budget(), 50 * kMiB);
  limits.SetBudget(400 * kMiB);
  EXPECT_EQ(limits.soft_budget(), 50 * kMiB);
  limits.SetGarbageCollectionThreshold(0.0);
  EXPECT_EQ(limits.soft_budget(), 0u);
  // A configured soft budget wins over the threshold whatever happens to it.
  config.soft_budget_bytes = 64 * kMiB;
  GrowthLimits fixed(config, kTotal);
  fixed.SetGarbageCollectionThreshold(0.9);
  fixed.SetFractionCap(10 * kMiB);
  EXPECT_EQ(fixed.soft_budget(), 64 * kMiB);
}

TEST(GrowthLimitsTest, GateCountsGrowingAndReleasingBytes) {
  AllocatorConfig config;
  config.budget_bytes = 100 * kMiB;
  GrowthLimits limits(config, kTotal);
  ASSERT_TRUE(limits.BeginGrowth(40 * kMiB, 40 * kMiB).ok());
  EXPECT_EQ(limits.growing_bytes(), 40 * kMiB);
  // A concurrent growth sees the first one in flight.
  absl::Status refused = limits.BeginGrowth(40 * kMiB, 40 * kMiB);
  EXPECT_TRUE(absl::IsResourceExhausted(refused));
  EXPECT_EQ(refused.message(),
            "budget of 104857600 bytes reached (holding 83886080, need "
            "41943040 more)");
  limits.EndGrowth(40 * kMiB);
  EXPECT_EQ(limits.growing_bytes(), 0u);
  // Bytes on their way back to the device still occupy it.
  limits.BeginRelease(30 * kMiB);
  EXPECT_FALSE(limits.BeginGrowth(40 * kMiB, 40 * kMiB).ok());
  limits.EndRelease(30 * kMiB);
  EXPECT_TRUE(limits.BeginGrowth(40 * kMiB, 60 * kMiB).ok());
}

TEST(GrowthLimitsTest, BudgetChangesTakeEffectForTheNextGrowth) {
  GrowthLimits limits(AllocatorConfig{}, kTotal);
  limits.SetBudget(10 * kMiB);
  EXPECT_EQ(limits.Headroom(4 * kMiB), 6 * kMiB);
  EXPECT_EQ(limits.Headroom(12 * kMiB), 0u);
  EXPECT_FALSE(limits.BeginGrowth(0, 20 * kMiB).ok());
  limits.SetBudget(0);
  EXPECT_TRUE(limits.BeginGrowth(0, 20 * kMiB).ok());
}

TEST(GrowthLimitsTest, PagesBeyondTheDeviceOrTheBudgetCanNeverFit) {
  AllocatorConfig config;
  config.budget_bytes = 100 * kMiB;
  GrowthLimits limits(config, kTotal);
  EXPECT_TRUE(limits.CheckPagesCanFit(100 * kMiB).ok());
  EXPECT_EQ(limits.CheckPagesCanFit(102 * kMiB).message(),
            "106954752 bytes of pages are more than the budget of 104857600 bytes");
  limits.SetBudget(0);
  EXPECT_EQ(limits.CheckPagesCanFit(2 * kTotal).message(),
            "2147483648 bytes of pages are more than the device's total of 1073741824 bytes");
}

}  // namespace
}  // namespace vramcache
