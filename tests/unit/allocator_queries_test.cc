// The allocator's answers about what it holds, against AllocatorQueries' interface with the
// allocator's real components in segment mode (tests/support/segment_mode_parts.h): a live
// allocation's size and nothing else's; the segment holding an address; the error for a
// pointer that is no live allocation names its segment, or says vramcache never handed it out;
// the largest free block counts the reuse cache's and asks the device nothing in segment mode;
// the statistics carry the settings and the budget; the recount finds a statistic changed
// behind the ledger's back.
#include "allocator/core/allocator_queries.h"

#include "gtest/gtest.h"
#include "tests/support/segment_mode_parts.h"

namespace vramcache {
namespace {

constexpr StreamHandle kHome = 11;

class AllocatorQueriesTest : public ::testing::Test {
 protected:
  AllocatorQueriesTest() {
    segment_ = parts_.AdoptSegment(20 * kMiB, kHome);
    Block* block = parts_.placement.FindFreeBlock(false, kDefaultPool, kHome, 4 * kMiB);
    live_ = parts_.lifecycle.FinishAllocation(block, 3 * kMiB, 4 * kMiB, kHome).value();
  }

  SegmentModeParts parts_;
  Segment* segment_ = nullptr;
  void* live_ = nullptr;
};

TEST_F(AllocatorQueriesTest, OnlyALiveAllocationHasASize) {
  const auto addr = reinterpret_cast<DevicePtr>(live_);
  EXPECT_EQ(parts_.queries.AllocationSize(addr).value(), 4 * kMiB);
  EXPECT_TRUE(absl::IsNotFound(parts_.queries.AllocationSize(addr + 512).status()));
  EXPECT_TRUE(absl::IsNotFound(parts_.queries.AllocationSize(addr + 4 * kMiB).status()));
}

TEST_F(AllocatorQueriesTest, TheSegmentHoldingAnAddressIsFound) {
  const auto inside = parts_.queries.BaseAllocation(segment_->base + 17 * kMiB);
  ASSERT_TRUE(inside.ok()) << inside.status();
  EXPECT_EQ(inside->first, segment_->base);
  EXPECT_EQ(inside->second, 20 * kMiB);
  EXPECT_TRUE(absl::IsNotFound(parts_.queries.BaseAllocation(segment_->base + 20 * kMiB).status()));
}

TEST_F(AllocatorQueriesTest, AnUnknownPointersErrorSaysWhereItIs) {
  absl::Status inside = parts_.queries.UnknownPointerError("free", segment_->base + 512);
  EXPECT_TRUE(absl::IsInvalidArgument(inside));
  EXPECT_NE(inside.message().find("double free"), absl::string_view::npos) << inside;
  EXPECT_NE(inside.message().find("20971520-byte segment"), absl::string_view::npos) << inside;
  absl::Status outside = parts_.queries.UnknownPointerError("record_stream", 0x10);
  EXPECT_NE(outside.message().find("record_stream of 0x10: this pointer was never allocated"),
            absl::string_view::npos)
      << outside;
}

TEST_F(AllocatorQueriesTest, TheLargestFreeBlockCountsTheReuseCacheAndAsksTheDeviceNothing) {
  parts_.device.ResetCallCounts();
  EXPECT_EQ(parts_.queries.LargestFreeBlock(), 16 * kMiB);  // the split remainder
  Block* big = parts_.placement.FindFreeBlock(false, kDefaultPool, kHome, 16 * kMiB);
  ASSERT_TRUE(parts_.lifecycle.FinishAllocation(big, 16 * kMiB, 16 * kMiB, kHome).ok());
  EXPECT_EQ(parts_.queries.LargestFreeBlock(), 0u);
  parts_.ledger.CountUserFree(*big);
  parts_.lifecycle.PushReuseCache(big);
  EXPECT_EQ(parts_.queries.LargestFreeBlock(), 16 * kMiB);  // cached whole
  EXPECT_EQ(parts_.device.Calls(SimOp::kMemInfo), 0);
}

TEST_F(AllocatorQueriesTest, TheStatisticsCarryTheSettingsAndTheBudget) {
  DeviceStats stats = parts_.queries.Stats();
  EXPECT_EQ(stats.max_split_size, -1);  // no limit
  EXPECT_EQ(stats.allocated_bytes.all().current, static_cast<std::int64_t>(4 * kMiB));
  EXPECT_EQ(stats.address_space_reserved_bytes, 0);
  parts_.settings.max_split_size = 64 * kMiB;
  parts_.limits.SetBudget(1 * kGiB);
  stats = parts_.queries.Stats();
  EXPECT_EQ(stats.max_split_size, static_cast<std::int64_t>(64 * kMiB));
  EXPECT_EQ(stats.budget_bytes, static_cast<std::int64_t>(1 * kGiB));
}

TEST_F(AllocatorQueriesTest, TheRecountFindsAStatisticChangedBehindTheLedger) {
  EXPECT_TRUE(parts_.queries.CheckInvariants().ok());
  parts_.stats.allocated_bytes.Increase(/*small=*/false, 512);
  absl::Status broken = parts_.queries.CheckInvariants();
  EXPECT_TRUE(absl::IsInternal(broken)) << broken;
  parts_.stats.allocated_bytes.Decrease(/*small=*/false, 512);
  EXPECT_TRUE(parts_.queries.CheckInvariants().ok());
}

}  // namespace
}  // namespace vramcache
