// Placement: best fit takes the smallest fitting block of the request's pool and stream; the
// max_split_size rules keep oversize blocks for oversize requests not much smaller than them; a
// remainder is split off only when worth a block; virtual-memory mode's large pool is first fit
// (the oldest segment's lowest fitting block); borrowing looks at every other stream's best fit.
#include "allocator/core/placement.h"

#include <cstddef>
#include <vector>

#include "allocator/core/block_heap.h"
#include "allocator/core/config.h"
#include "allocator/core/stats_ledger.h"
#include "gtest/gtest.h"

namespace vramcache {
namespace {

constexpr StreamHandle kStream = 11;
constexpr StreamHandle kOther = 12;
constexpr StreamHandle kThird = 13;

class PlacementTest : public ::testing::Test {
 protected:
  explicit PlacementTest(bool virtual_memory = false)
      : heap_(&ledger_, /*first_fit_large=*/virtual_memory),
        placement_(&heap_, &settings_, virtual_memory) {}
  ~PlacementTest() override {
    for (auto& [base, segment] : heap_.segments()) {
      heap_.ForgetSegmentBlocks(segment);
      delete segment;
    }
    heap_.Clear();
  }

  // A free segment of `size` bytes, one block, at the next address (or at `base`).
  Block* FreeSegment(std::size_t size, StreamHandle stream, PoolId pool = kDefaultPool,
                     bool small = false, DevicePtr base = 0) {
    if (base == 0) {
      base = next_base_;
      next_base_ += size;
    }
    Segment* segment = heap_.Adopt(base, size, small, stream, pool);
    heap_.AddFreeBlock(segment->head);
    return segment->head;
  }

  RuntimeSettings settings_{.max_split_size = SIZE_MAX};
  DeviceStats stats_;
  StatsLedger ledger_{&stats_, /*max_split_size=*/SIZE_MAX};
  BlockHeap heap_;
  Placement placement_;
  DevicePtr next_base_ = 0x40000000;
};

TEST_F(PlacementTest, BestFitTakesTheSmallestFittingBlockOfTheRequestsStream) {
  FreeSegment(4 * kMiB, kStream);
  Block* eight = FreeSegment(8 * kMiB, kStream);
  FreeSegment(16 * kMiB, kStream);
  FreeSegment(6 * kMiB, kOther);               // fits better, but another stream's
  FreeSegment(6 * kMiB, kStream, /*pool=*/7);  // and another pool's
  EXPECT_EQ(placement_.FindFreeBlock(false, kDefaultPool, kStream, 6 * kMiB), eight);
  EXPECT_EQ(placement_.FindFreeBlock(false, kDefaultPool, kStream, 20 * kMiB), nullptr);
  EXPECT_EQ(placement_.FindFreeBlock(true, kDefaultPool, kStream, 6 * kMiB), nullptr);
}

TEST_F(PlacementTest, EqualSizesGoToTheLowestAddress) {
  Block* low = FreeSegment(8 * kMiB, kStream, kDefaultPool, false, 0x10000000);
  FreeSegment(8 * kMiB, kStream, kDefaultPool, false, 0x20000000);
  EXPECT_EQ(placement_.FindFreeBlock(false, kDefaultPool, kStream, 8 * kMiB), low);
}

TEST_F(PlacementTest, ARemainderIsSplitOffOnlyWhenWorthABlock) {
  Block* large = FreeSegment(20 * kMiB, kStream);
  EXPECT_TRUE(placement_.ShouldSplit(large, 3 * kMiB));
  EXPECT_FALSE(placement_.ShouldSplit(large, 19 * kMiB));  // 1 MiB left: a small request's size
  Block* small = FreeSegment(2 * kMiB, kStream, kDefaultPool, /*small=*/true);
  EXPECT_TRUE(placement_.ShouldSplit(small, 2 * kMiB - 512));
  EXPECT_FALSE(placement_.ShouldSplit(small, 2 * kMiB));
}

TEST_F(PlacementTest, OversizeBlocksServeOnlyOversizeRequestsNotMuchSmallerThanThem) {
  Block* oversize = FreeSegment(12 * kMiB, kStream);
  EXPECT_EQ(placement_.FindFreeBlock(false, kDefaultPool, kStream, 4 * kMiB), oversize);
  // The rules are read at each decision: a runtime change applies to the next request.
  settings_.max_split_size = 10 * kMiB;
  settings_.max_non_split_rounding = 2 * kMiB;
  EXPECT_EQ(placement_.FindFreeBlock(false, kDefaultPool, kStream, 4 * kMiB), nullptr);
  EXPECT_EQ(placement_.FindFreeBlock(false, kDefaultPool, kStream, 10 * kMiB), nullptr);
  EXPECT_EQ(placement_.FindFreeBlock(false, kDefaultPool, kStream, 11 * kMiB), oversize);
  EXPECT_FALSE(placement_.ShouldSplit(oversize, 11 * kMiB));  // oversize requests never split
}

class FirstFitTest : public PlacementTest {
 protected:
  FirstFitTest() : PlacementTest(/*virtual_memory=*/true) {}
};

TEST_F(FirstFitTest, TheLargePoolTakesTheOldestSegmentsLowestFittingBlock) {
  // The older segment lies higher and fits worse: first fit takes it all the same.
  Block* older = FreeSegment(16 * kMiB, kStream, kDefaultPool, false, 0x20000000);
  FreeSegment(6 * kMiB, kStream, kDefaultPool, false, 0x10000000);
  EXPECT_EQ(placement_.FindFreeBlock(false, kDefaultPool, kStream, 6 * kMiB), older);
  EXPECT_EQ(placement_.FindFreeBlock(false, kDefaultPool, kOther, 6 * kMiB), nullptr);
}

TEST_F(PlacementTest, BorrowingTakesTheBestFitOverEveryOtherStream) {
  FreeSegment(8 * kMiB, kOther);
  Block* third = FreeSegment(6 * kMiB, kThird);
  FreeSegment(5 * kMiB, kStream);  // the requester's own: not borrowed
  EXPECT_EQ(placement_.BestFitOnOtherStream(false, kDefaultPool, kStream, 5 * kMiB), third);
  EXPECT_EQ(placement_.BestFitOnOtherStream(false, kDefaultPool, kStream, 32 * kMiB), nullptr);
  EXPECT_EQ(placement_.BestFitOnOtherStream(false, /*pool=*/7, kStream, 5 * kMiB), nullptr);
}

}  // namespace
}  // namespace vramcache
