// The statistics ledger's transitions in segment mode: a request served and freed moves the
// allocation counters and back, active follows its own transition, oversize blocks are counted
// apart, only blocks of split segments count as inactive_split, and a segment adopted and
// released moves the segment and reserved counters and back; a Stat's freed() matches a recount.
#include "allocator/core/stats_ledger.h"

#include <algorithm>
#include <cstdint>

#include "gtest/gtest.h"

namespace vramcache {
namespace {

constexpr std::size_t kMaxSplitSize = 64 << 20;

class StatsLedgerTest : public ::testing::Test {
 protected:
  StatsLedgerTest() : ledger_(&stats_, kMaxSplitSize) {
    small_segment_.small = true;
    large_segment_.small = false;
  }

  Block MakeBlock(Segment* segment, std::size_t size) {
    Block block;
    block.segment = segment;
    block.size = size;
    return block;
  }

  DeviceStats stats_;
  StatsLedger ledger_;
  Segment small_segment_;
  Segment large_segment_;
};

TEST_F(StatsLedgerTest, UserAllocationAndFreeAreInverse) {
  Block block = MakeBlock(&small_segment_, 1024);
  block.requested = 1000;
  ledger_.CountUserAllocation(block, block.requested);
  EXPECT_EQ(stats_.allocation.by_pool[1].current, 1);
  EXPECT_EQ(stats_.allocation.all().current, 1);
  EXPECT_EQ(stats_.allocated_bytes.by_pool[1].current, 1024);
  EXPECT_EQ(stats_.requested_bytes.by_pool[1].current, 1000);
  EXPECT_EQ(stats_.allocation.by_pool[2].current, 0);
  EXPECT_EQ(stats_.oversize_allocations.current, 0);
  EXPECT_EQ(stats_.active.all().current, 0);  // active is its own transition

  ledger_.CountUserFree(block);
  EXPECT_EQ(stats_.allocation.all().current, 0);
  EXPECT_EQ(stats_.allocated_bytes.all().current, 0);
  EXPECT_EQ(stats_.requested_bytes.all().current, 0);
  EXPECT_EQ(stats_.allocated_bytes.all().peak, 1024);
  EXPECT_EQ(stats_.allocated_bytes.all().freed(), 1024);
}

TEST_F(StatsLedgerTest, OversizeBlocksAreCountedApart) {
  Block block = MakeBlock(&large_segment_, kMaxSplitSize);
  block.requested = kMaxSplitSize;
  ledger_.CountUserAllocation(block, block.requested);
  EXPECT_EQ(stats_.oversize_allocations.current, 1);
  EXPECT_EQ(stats_.allocation.by_pool[2].current, 1);
  ledger_.CountUserFree(block);
  EXPECT_EQ(stats_.oversize_allocations.current, 0);
  EXPECT_EQ(stats_.oversize_allocations.peak, 1);
}

// max_split_size may change at run time (_set_allocator_settings): a free undoes what its
// allocation counted, whatever the threshold is now.
TEST_F(StatsLedgerTest, AFreeUndoesWhatItsAllocationCountedAfterTheThresholdMoves) {
  Block counted = MakeBlock(&large_segment_, kMaxSplitSize);
  Block not_counted = MakeBlock(&large_segment_, kMaxSplitSize / 2);
  ledger_.CountUserAllocation(counted, counted.size);
  ledger_.CountUserAllocation(not_counted, not_counted.size);
  EXPECT_EQ(stats_.oversize_allocations.current, 1);
  ledger_.SetMaxSplitSize(kMaxSplitSize * 2);  // `counted` would no longer be oversize
  ledger_.CountUserFree(counted);
  EXPECT_EQ(stats_.oversize_allocations.current, 0);
  ledger_.SetMaxSplitSize(kMaxSplitSize / 4);  // `not_counted` would be now
  ledger_.CountUserFree(not_counted);
  EXPECT_EQ(stats_.oversize_allocations.current, 0);
  EXPECT_EQ(stats_.oversize_allocations.freed(), 1);
}

TEST_F(StatsLedgerTest, ActiveFollowsItsDirection) {
  Block block = MakeBlock(&large_segment_, 4 << 20);
  ledger_.CountActive(block, +1);
  EXPECT_EQ(stats_.active.by_pool[2].current, 1);
  EXPECT_EQ(stats_.active_bytes.by_pool[2].current, 4 << 20);
  ledger_.CountActive(block, -1);
  EXPECT_EQ(stats_.active.all().current, 0);
  EXPECT_EQ(stats_.active_bytes.all().current, 0);
  EXPECT_EQ(stats_.active_bytes.all().peak, 4 << 20);
}

TEST_F(StatsLedgerTest, OnlyBlocksOfSplitSegmentsAreInactiveSplit) {
  Block whole = MakeBlock(&large_segment_, 2 << 20);
  ledger_.CountSplitBlock(whole, +1);
  EXPECT_EQ(stats_.inactive_split.all().current, 0);

  Block left = MakeBlock(&large_segment_, 1 << 20);
  Block right = MakeBlock(&large_segment_, 1 << 20);
  left.next = &right;
  right.prev = &left;
  ledger_.CountSplitBlock(right, +1);
  EXPECT_EQ(stats_.inactive_split.by_pool[2].current, 1);
  EXPECT_EQ(stats_.inactive_split_bytes.by_pool[2].current, 1 << 20);
  ledger_.CountSplitBlock(right, -1);
  EXPECT_EQ(stats_.inactive_split.all().current, 0);
  EXPECT_EQ(stats_.inactive_split_bytes.all().current, 0);
}

Segment MakeSegment(bool small, std::size_t size) {
  Segment segment;
  segment.small = small;
  segment.size = size;
  return segment;
}

TEST_F(StatsLedgerTest, SegmentAdoptedAndReleasedAreInverse) {
  Segment large = MakeSegment(false, 20 << 20);
  Segment small = MakeSegment(true, 2 << 20);
  ledger_.CountSegmentAdopted(large);
  EXPECT_EQ(stats_.segment.by_pool[2].current, 1);
  EXPECT_EQ(stats_.reserved_bytes.by_pool[2].current, 20 << 20);
  EXPECT_EQ(stats_.num_device_alloc, 1);
  EXPECT_EQ(stats_.oversize_segments.current, 0);
  ledger_.CountSegmentAdopted(small);
  EXPECT_EQ(stats_.segment.all().current, 2);
  EXPECT_EQ(stats_.reserved_bytes.by_pool[1].current, 2 << 20);

  ledger_.CountSegmentReleased(large);
  ledger_.CountSegmentReleased(small);
  EXPECT_EQ(stats_.segment.all().current, 0);
  EXPECT_EQ(stats_.reserved_bytes.all().current, 0);
  EXPECT_EQ(stats_.reserved_bytes.all().peak, 22 << 20);
  // The device free is counted when it completes, outside the lock.
  EXPECT_EQ(stats_.num_device_free, 0);
  ledger_.CountDeviceFrees(2);
  EXPECT_EQ(stats_.num_device_free, 2);
}

// As for blocks, a release undoes what the adoption counted, whatever the threshold is now.
TEST_F(StatsLedgerTest, OversizeSegmentsAreCountedApart) {
  Segment oversize = MakeSegment(false, kMaxSplitSize);
  Segment ordinary = MakeSegment(false, kMaxSplitSize / 2);
  ledger_.CountSegmentAdopted(oversize);
  ledger_.CountSegmentAdopted(ordinary);
  EXPECT_TRUE(oversize.counted_oversize);
  EXPECT_EQ(stats_.oversize_segments.current, 1);
  ledger_.SetMaxSplitSize(kMaxSplitSize / 4);  // `ordinary` would be oversize now
  ledger_.CountSegmentReleased(ordinary);
  EXPECT_EQ(stats_.oversize_segments.current, 1);
  ledger_.CountSegmentReleased(oversize);
  EXPECT_EQ(stats_.oversize_segments.current, 0);
  EXPECT_EQ(stats_.oversize_segments.peak, 1);
}

TEST_F(StatsLedgerTest, SettlingDoesNothingInSegmentMode) {
  ledger_.SettleVmmSplitStats();
  EXPECT_EQ(stats_.inactive_split.all().current, 0);
  EXPECT_EQ(stats_.inactive_split_bytes.all().current, 0);
}

// Stat keeps no `freed` field: freed() follows from current, allocated and the current at the
// last reset. Checked against a plain recount over random increases, decreases and resets.
TEST(StatTest, FreedIsWhatWasRemovedSinceTheLastReset) {
  Stat stat;
  std::int64_t current = 0, peak = 0, allocated = 0, freed = 0;
  std::uint64_t rng = 12345;
  for (int step = 0; step < 10000; ++step) {
    rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
    const auto amount = static_cast<std::int64_t>((rng >> 33) % 4096);
    switch ((rng >> 20) % 7) {
      case 0:
        stat.ResetAccumulated();
        allocated = freed = 0;
        break;
      case 1:
        stat.ResetPeak();
        peak = current;
        break;
      case 2:
      case 3:
        if (amount <= current) {
          stat.Decrease(amount);
          current -= amount;
          freed += amount;
          break;
        }
        [[fallthrough]];
      default:
        stat.Increase(amount);
        current += amount;
        allocated += amount;
        peak = std::max(peak, current);
    }
    ASSERT_EQ(stat.current, current);
    ASSERT_EQ(stat.peak, peak);
    ASSERT_EQ(stat.allocated, allocated);
    ASSERT_EQ(stat.freed(), freed) << "step " << step;
  }
}

}  // namespace
}  // namespace vramcache
