// The segment backing against its interface: the growth gate counts a segment in flight from
// before its device allocation and from its detachment until its free completes; the ledger
// counts it adopted and released; free memory is the free blocks; pages need nothing and no
// release is ever kept back; a snapshot shows a segment whole.
#include "allocator/core/segment_backing.h"

#include <vector>

#include "allocator/core/caching_allocator.h"
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
  backing_.SegmentsFreed(/*calls=*/1, 8 * kMiB);
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

TEST_F(SegmentBackingTest, ASnapshotShowsTheSegmentWholeWithEveryBlock) {
  Segment segment;
  segment.base = 0x7000000;
  segment.size = 4 * kMiB;
  segment.stream = 7;
  segment.small = false;
  Block used;
  Block free;
  used.segment = free.segment = &segment;
  used.addr = segment.base;
  used.size = kMiB;
  used.requested = kMiB - 100;
  used.state = BlockState::kAllocated;
  used.next = &free;
  free.prev = &used;
  free.addr = segment.base + kMiB;
  free.size = 3 * kMiB;
  segment.head = &used;
  std::vector<SegmentInfo> out;
  backing_.AppendSnapshot(segment, &out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].base, segment.base);
  EXPECT_EQ(out[0].size, 4 * kMiB);
  EXPECT_EQ(out[0].stream, 7u);
  EXPECT_FALSE(out[0].small);
  ASSERT_EQ(out[0].blocks.size(), 2u);
  EXPECT_EQ(out[0].blocks[0].addr, segment.base);
  EXPECT_EQ(out[0].blocks[0].size, kMiB);
  EXPECT_EQ(out[0].blocks[0].requested, kMiB - 100);
  EXPECT_EQ(out[0].blocks[0].state, BlockState::kAllocated);
  EXPECT_EQ(out[0].blocks[1].addr, segment.base + kMiB);
  EXPECT_EQ(out[0].blocks[1].size, 3 * kMiB);
  EXPECT_EQ(out[0].blocks[1].state, BlockState::kFree);
}

TEST_F(SegmentBackingTest, NoReleaseIsKeptBackSoFlushesAndCaptureEndsChangeNothing) {
  Segment segment;
  segment.size = 8 * kMiB;
  ledger_.CountSegmentAdopted(segment);
  const DeviceStats before = stats_;
  backing_.FlushDeferredReleases(StreamsNow{});
  backing_.CaptureEnded(StreamsNow{});
  backing_.DropDeferredReleases();
  EXPECT_EQ(backing_.HeldBytes(), 8 * kMiB);
  EXPECT_EQ(stats_.num_device_alloc, before.num_device_alloc);
  EXPECT_EQ(stats_.num_device_free, before.num_device_free);
}

}  // namespace
}  // namespace vramcache
