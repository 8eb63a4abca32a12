// The virtual-memory backing against its interface, on the simulated device: a block's pages
// get chunks and the reserved statistics follow; a release during a capture is kept and done
// by the next flush or the capture's end, or dropped at shutdown; trimming gives the chunks back;
// free memory is free pages and chunks; a snapshot shows the runs of pages that hold chunks.
#include "allocator/core/vmm_backing.h"

#include <cstdint>
#include <memory>
#include <vector>

#include "allocator/core/caching_allocator.h"
#include "allocator/core/config.h"
#include "allocator/device/sim_device.h"
#include "gtest/gtest.h"

namespace vramcache {
namespace {

constexpr std::size_t kGran = 2 * kMiB;

class VmmBackingTest : public ::testing::Test {
 protected:
  VmmBackingTest()
      : ledger_(&stats_, /*max_split_size=*/SIZE_MAX),
        backing_(&device_, AllocatorConfig{}, &ledger_, /*budget=*/0) {}
  ~VmmBackingTest() override { EXPECT_TRUE(backing_.chunks().ReleaseAll().ok()); }

  // A segment over a new range of `pages` pages, with one block covering `block_pages` of them.
  void MakeSegment(std::size_t pages, std::size_t block_pages) {
    absl::StatusOr<VmmArena*> arena = backing_.chunks().CreateArena(pages * kGran, /*stream=*/0);
    ASSERT_TRUE(arena.ok()) << arena.status();
    segment_.arena = *arena;
    segment_.base = (*arena)->base();
    segment_.size = pages * kGran;
    block_.segment = &segment_;
    block_.addr = segment_.base;
    block_.size = block_pages * kGran;
    segment_.head = &block_;
  }

  SimDevice device_;
  DeviceStats stats_;
  StatsLedger ledger_;
  VmmBacking backing_;
  Segment segment_;
  Block block_;
};

TEST_F(VmmBackingTest, AcquiredPagesHoldChunksAndTheStatisticsFollow) {
  MakeSegment(4, 2);
  EXPECT_EQ(backing_.AddressSpaceBytes(), 4 * kGran);
  ASSERT_TRUE(backing_.AcquirePages(&block_).ok());
  EXPECT_TRUE(block_.holds_pages);
  EXPECT_EQ(backing_.HeldBytes(), 2 * kGran);
  EXPECT_EQ(stats_.reserved_bytes.by_pool[2].current, static_cast<std::int64_t>(2 * kGran));
  EXPECT_EQ(stats_.num_device_alloc, 2);
  EXPECT_EQ(stats_.num_map_calls, 2);
  EXPECT_EQ(backing_.FreeMemory().bytes, 0u);
}

TEST_F(VmmBackingTest, AReleaseDuringACaptureWaitsForTheNextFlush) {
  MakeSegment(2, 1);
  ASSERT_TRUE(backing_.AcquirePages(&block_).ok());
  backing_.ReleasePages(&block_, StreamsNow{.captures_active = true});
  EXPECT_FALSE(block_.holds_pages);
  EXPECT_EQ(backing_.FreeMemory().bytes, 0u);  // still live: kept, not released
  backing_.FlushDeferredReleases(StreamsNow{.captures_active = true});
  EXPECT_EQ(backing_.FreeMemory().bytes, 0u);  // still under way
  backing_.FlushDeferredReleases(StreamsNow{});
  // The page is free and keeps its chunk for the next request.
  EXPECT_EQ(backing_.FreeMemory().bytes, kGran);
  EXPECT_EQ(backing_.HeldBytes(), kGran);
}

TEST_F(VmmBackingTest, TrimGivesChunksBack) {
  MakeSegment(2, 2);
  ASSERT_TRUE(backing_.AcquirePages(&block_).ok());
  backing_.ReleasePages(&block_, StreamsNow{});
  EXPECT_EQ(backing_.FreeMemory().bytes, 2 * kGran);
  if (backing_.MustWaitToTrim()) {
    ASSERT_TRUE(device_.SynchronizeDevice().ok());
  }
  absl::StatusOr<std::size_t> trimmed = backing_.Trim(SIZE_MAX);
  ASSERT_TRUE(trimmed.ok()) << trimmed.status();
  EXPECT_EQ(*trimmed, 2 * kGran);
  EXPECT_EQ(backing_.HeldBytes(), 0u);
  EXPECT_EQ(stats_.reserved_bytes.all().current, 0);
  EXPECT_EQ(stats_.reserved_bytes.all().peak, static_cast<std::int64_t>(2 * kGran));
  EXPECT_EQ(stats_.num_device_free, 2);
}

TEST_F(VmmBackingTest, ADetachedRangeCountsAsASegmentReleased) {
  MakeSegment(1, 1);
  ledger_.CountSegmentAdopted(segment_);
  EXPECT_EQ(stats_.segment.all().current, 1);
  EXPECT_EQ(stats_.reserved_bytes.all().current, 0);  // a range holds no memory
  backing_.Detached(segment_);
  EXPECT_EQ(stats_.segment.all().current, 0);
}

TEST_F(VmmBackingTest, TheBudgetCapsChunks) {
  MakeSegment(4, 3);
  backing_.SetBudget(2 * kGran);
  EXPECT_TRUE(absl::IsResourceExhausted(backing_.AcquirePages(&block_)));
  EXPECT_FALSE(block_.holds_pages);
}

TEST_F(VmmBackingTest, RangesForTheLargePoolAreLargeAndAPrivatePoolsAreBackedWhole) {
  absl::StatusOr<VmmArena*> large =
      backing_.ReserveRange(3 * kMiB, /*small=*/false, /*private_pool=*/false, 0, SIZE_MAX);
  ASSERT_TRUE(large.ok()) << large.status();
  EXPECT_EQ((*large)->size(), VmmBacking::kLargeRangeBytes);
  EXPECT_EQ(backing_.HeldBytes(), 0u);  // address space only
  // At or above max_split_size a large range would serve no ordinary request.
  absl::StatusOr<VmmArena*> capped = backing_.ReserveRange(
      3 * kMiB, false, false, 0, /*max_split_size=*/VmmBacking::kLargeRangeBytes);
  ASSERT_TRUE(capped.ok());
  EXPECT_EQ((*capped)->size(), 20 * kMiB);
  absl::StatusOr<VmmArena*> pinned = backing_.ReserveRange(3 * kMiB, false, true, 0, SIZE_MAX);
  ASSERT_TRUE(pinned.ok());
  EXPECT_EQ((*pinned)->size(), 20 * kMiB);
  EXPECT_EQ(backing_.HeldBytes(), 20 * kMiB);
  EXPECT_EQ(stats_.reserved_bytes.all().current, static_cast<std::int64_t>(20 * kMiB));
  // A private pool's range that cannot be backed is not kept.
  backing_.SetBudget(30 * kMiB);
  const std::size_t address = backing_.AddressSpaceBytes();
  EXPECT_TRUE(absl::IsResourceExhausted(
      backing_.ReserveRange(3 * kMiB, false, true, 0, SIZE_MAX).status()));
  EXPECT_EQ(backing_.AddressSpaceBytes(), address);
}

TEST_F(VmmBackingTest, ASnapshotShowsTheRunsOfPagesThatHoldChunksWithTheirBlocksClipped) {
  // Four pages: `block_` over page 0 and half of page 1 (acquired), a free block up to page 3,
  // and one over page 3 (acquired). Pages 0-1 and 3 hold chunks; page 2 none.
  MakeSegment(4, 1);
  block_.size = kGran + kGran / 2;
  block_.state = BlockState::kAllocated;
  Block gap;
  Block last;
  gap.segment = last.segment = &segment_;
  gap.addr = segment_.base + block_.size;
  gap.size = 3 * kGran - block_.size;
  last.addr = segment_.base + 3 * kGran;
  last.size = kGran;
  last.state = BlockState::kAllocated;
  block_.next = &gap;
  gap.prev = &block_;
  gap.next = &last;
  last.prev = &gap;
  ASSERT_TRUE(backing_.AcquirePages(&block_).ok());
  ASSERT_TRUE(backing_.AcquirePages(&last).ok());
  std::vector<SegmentInfo> out;
  backing_.AppendSnapshot(segment_, &out);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].base, segment_.base);
  EXPECT_EQ(out[0].size, 2 * kGran);
  ASSERT_EQ(out[0].blocks.size(), 2u);
  EXPECT_EQ(out[0].blocks[0].size, kGran + kGran / 2);
  EXPECT_EQ(out[0].blocks[1].addr, gap.addr);
  EXPECT_EQ(out[0].blocks[1].size, kGran / 2);  // clipped to the run
  EXPECT_EQ(out[0].blocks[1].state, BlockState::kFree);
  EXPECT_EQ(out[1].base, segment_.base + 3 * kGran);
  EXPECT_EQ(out[1].size, kGran);
  ASSERT_EQ(out[1].blocks.size(), 1u);
  EXPECT_EQ(out[1].blocks[0].addr, last.addr);
  std::size_t listed = 0;
  for (const SegmentInfo& info : out) listed += info.size;
  EXPECT_EQ(listed, backing_.HeldBytes());  // each chunk once
}

TEST_F(VmmBackingTest, TheCapturesEndReleasesWhatItKeptBack) {
  MakeSegment(2, 1);
  ASSERT_TRUE(backing_.AcquirePages(&block_).ok());
  backing_.chunks().SetEventQueriesAllowed(false);
  backing_.ReleasePages(&block_, StreamsNow{.captures_active = true});
  EXPECT_EQ(backing_.FreeMemory().bytes, 0u);  // kept back
  backing_.CaptureEnded(StreamsNow{});
  EXPECT_EQ(backing_.FreeMemory().bytes, kGran);
}

TEST_F(VmmBackingTest, ShutdownDropsTheReleasesKeptBack) {
  MakeSegment(2, 1);
  ASSERT_TRUE(backing_.AcquirePages(&block_).ok());
  backing_.ReleasePages(&block_, StreamsNow{.captures_active = true});
  backing_.DropDeferredReleases();
  backing_.FlushDeferredReleases(StreamsNow{});
  EXPECT_EQ(backing_.FreeMemory().bytes, 0u);  // nothing left to retry
}

}  // namespace
}  // namespace vramcache
