// The segment backing against its interface: the growth gate counts a segment in flight from
// before its device allocation and from its detachment until its free completes; the ledger
// counts it adopted and released; free memory is the free blocks; pages need nothing.
#include "allocator/core/segment_backing.h"

#include "allocator/core/config.h"
#include "gtest/gtest.h"

namespace vramcache {
namespace {

class SegmentBackingTest : public ::testing::Test {
 protected:
  SegmentBackingTest()
      : ledger_(&stats_, /*max_split_size=*/SIZE_MAX),
        limits_(Budget(10 * kMiB), /*device_total_bytes=*/1024 * kMiB),
        backing_(&stats_, &ledger_, &limits_, &small_free_, &large_free_) {}

  static AllocatorConfig Budget(std::size_t bytes) {
    AllocatorConfig config;
    config.budget_bytes = bytes;
    return config;
  }

  DeviceStats stats_;
  StatsLedger ledger_;
  GrowthLimits limits_;
  FreeBlockSet small_free_;
  FreeBlockSet large_free_;
  SegmentBacking backing_;
};

TEST_F(SegmentBackingTest, GrowthIsInFlightUntilTheSegmentIsAdopted) {
  ASSERT_TRUE(backing_.BeginGrowth(8 * kMiB).ok());
  // A second thread's growth sees the first one although nothing is reserved yet.
  EXPECT_EQ(backing_.HeldBytes(), 0u);
  EXPECT_TRUE(absl::IsResourceExhausted(backing_.BeginGrowth(4 * kMiB)));
  backing_.EndGrowth(8 * kMiB);
  Segment segment;
  segment.small = false;
  segment.size = 8 * kMiB;
  ledger_.CountSegmentAdopted(segment);
  EXPECT_EQ(backing_.HeldBytes(), 8 * kMiB);
  EXPECT_EQ(stats_.num_device_alloc, 1);
  EXPECT_TRUE(absl::IsResourceExhausted(backing_.BeginGrowth(4 * kMiB)));
}

TEST_F(SegmentBackingTest, ADetachedSegmentOccupiesTheBudgetUntilItsFreeCompletes) {
  Segment segment;
  segment.small = false;
  segment.size = 8 * kMiB;
  ledger_.CountSegmentAdopted(segment);
  backing_.Detached(segment);
  EXPECT_EQ(backing_.HeldBytes(), 0u);  // no longer reserved...
  EXPECT_EQ(stats_.segment.all().current, 0);
  EXPECT_FALSE(backing_.BeginGrowth(4 * kMiB).ok());  // ...but not returned yet
  backing_.Freed(/*calls=*/1, 8 * kMiB);
  EXPECT_EQ(stats_.num_device_free, 1);
  EXPECT_TRUE(backing_.BeginGrowth(4 * kMiB).ok());
}

TEST_F(SegmentBackingTest, FreeMemoryIsTheFreeBlocks) {
  EXPECT_EQ(backing_.FreeMemory().bytes, 0u);
  Block a;
  a.addr = 0x1000;
  a.size = 3 * kMiB;
  Block b;
  b.addr = 0x900000;
  b.size = 1 * kMiB;
  Block c;
  c.addr = 0x100;
  c.size = 512;
  large_free_.insert(&a);
  large_free_.insert(&b);
  small_free_.insert(&c);
  const CachedFree free = backing_.FreeMemory();
  EXPECT_EQ(free.bytes, 4 * kMiB + 512);
  EXPECT_EQ(free.largest_block, 3 * kMiB);
}

TEST_F(SegmentBackingTest, PagesNeedNothingAndThereIsNoAddressSpace) {
  Segment segment;
  Block block;
  block.segment = &segment;
  EXPECT_TRUE(backing_.AcquirePages(&block).ok());
  EXPECT_FALSE(block.holds_pages);
  EXPECT_EQ(backing_.AddressSpaceBytes(), 0u);
  EXPECT_TRUE(backing_.EnablePeerAccess(1).ok());  // cudaDeviceEnablePeerAccess covers it
}

}  // namespace
}  // namespace vramcache
