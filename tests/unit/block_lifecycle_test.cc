// A block's moves between its states, against BlockLifecycle's interface with the allocator's
// real components in segment mode (tests/support/segment_mode_parts.h), the invariant recount
// checked after each: a block handed out from a free block is split, counted and in the pointer
// map; freed into the reuse cache it stays in the map and serves the same request of its own
// stream only; a flush of one stream's lists leaves the other streams' cached; the heap serves
// a request once its stream's cached blocks coalesced, else another stream's block is borrowed
// behind an event, else growth is left with the cache flushed; a pending free
// enters the cache only on the allocation path; a user's free returns at once or waits for the
// streams that used it; shutdown's forgetting detaches every segment.
#include "allocator/core/block_lifecycle.h"

#include <optional>
#include <vector>

#include "gtest/gtest.h"
#include "tests/support/segment_mode_parts.h"

namespace vramcache {
namespace {

constexpr StreamHandle kHome = 11;
constexpr StreamHandle kOther = 12;
constexpr std::size_t kRequest = 4 * kMiB;

SimDeviceOptions ManualCompletion() {
  SimDeviceOptions options;
  options.completion = SimCompletion::kManual;
  return options;
}

class BlockLifecycleTest : public ::testing::Test {
 protected:
  BlockLifecycleTest() : parts_(ManualCompletion()) {}

  // A block of kRequest bytes handed out on `stream` from a new 20 MiB segment of its own.
  Block* Allocated(StreamHandle stream) {
    Block* block = parts_.AllocateFromNewSegment(kRequest, stream);
    EXPECT_NE(block, nullptr);
    return block;
  }
  // The user's free, as the facade makes it, into the reuse cache.
  void FreeIntoCache(Block* block) {
    parts_.ledger.CountUserFree(*block);
    parts_.lifecycle.PushReuseCache(block);
  }
  absl::Status FreeNotCached(Block* block) { return parts_.FreeNotCached(block); }
  void ExpectInvariants() {
    absl::Status s = parts_.queries.CheckInvariants();
    EXPECT_TRUE(s.ok()) << s;
  }

  SegmentModeParts parts_;
};

TEST_F(BlockLifecycleTest, AHandedOutBlockIsSplitCountedAndInThePointerMap) {
  Block* block = Allocated(kHome);
  EXPECT_EQ(block->state, BlockState::kAllocated);
  EXPECT_EQ(block->size, kRequest);  // the 16 MiB after it went back as a split block
  EXPECT_TRUE(block->is_split());
  EXPECT_TRUE(parts_.allocated_or_cached.contains(block->addr));
  EXPECT_EQ(parts_.stats.allocation.all().current, 1);
  EXPECT_EQ(parts_.stats.inactive_split.all().current, 1);
  ExpectInvariants();
}

TEST_F(BlockLifecycleTest, ACachedBlockStaysInTheMapAndServesOnlyItsOwnRequest) {
  Block* block = Allocated(kHome);
  FreeIntoCache(block);
  EXPECT_EQ(block->state, BlockState::kCached);
  EXPECT_TRUE(parts_.allocated_or_cached.contains(block->addr));
  EXPECT_EQ(parts_.reuse_cache.bytes(), kRequest);
  EXPECT_EQ(parts_.stats.allocation.all().current, 0);
  ExpectInvariants();

  EXPECT_EQ(parts_.lifecycle.PopReuseCache(kDefaultPool, kOther, kRequest), nullptr);
  EXPECT_EQ(parts_.lifecycle.PopReuseCache(kDefaultPool, kHome, kRequest + 512), nullptr);
  ASSERT_EQ(parts_.lifecycle.PopReuseCache(kDefaultPool, kHome, kRequest), block);
  absl::StatusOr<void*> ptr = parts_.lifecycle.MarkAllocated(block, kRequest, kRequest, kHome);
  ASSERT_TRUE(ptr.ok()) << ptr.status();
  EXPECT_EQ(*ptr, reinterpret_cast<void*>(block->addr));
  EXPECT_EQ(parts_.stats.allocation.all().current, 1);
  ExpectInvariants();
}

TEST_F(BlockLifecycleTest, AFlushOfOneStreamLeavesTheOtherStreamsBlocksCached) {
  Block* home = Allocated(kHome);
  Block* other = Allocated(kOther);
  FreeIntoCache(home);
  FreeIntoCache(other);
  parts_.lifecycle.FlushReuseCacheOf(kHome);
  EXPECT_EQ(home->state, BlockState::kFree);  // coalesced: its segment is wholly free again
  EXPECT_TRUE(home->segment->IsWhollyFree());
  EXPECT_FALSE(parts_.allocated_or_cached.contains(home->addr));
  EXPECT_EQ(other->state, BlockState::kCached);
  EXPECT_EQ(parts_.reuse_cache.bytes(), kRequest);
  ExpectInvariants();
  parts_.lifecycle.FlushReuseCache();
  EXPECT_TRUE(parts_.reuse_cache.empty());
  EXPECT_TRUE(parts_.allocated_or_cached.empty());
  ExpectInvariants();
}

TEST_F(BlockLifecycleTest, TheHeapServesARequestAfterItsStreamsCachedBlocksCoalesce) {
  Block* cached = Allocated(kHome);
  FreeIntoCache(cached);
  std::optional<bool> capturing_known;
  // 20 MiB: only the whole segment fits, once the cached block has coalesced with the rest.
  auto served = parts_.lifecycle.ServeFromHeap(GrowthRequest{20 * kMiB, 20 * kMiB, false, kHome},
                                               /*fresh_addresses=*/false, capturing_known);
  ASSERT_TRUE(served.has_value());
  ASSERT_TRUE(served->ok()) << served->status();
  EXPECT_EQ(**served, reinterpret_cast<void*>(cached->segment->base));
  EXPECT_EQ(parts_.stats.num_cache_hits, 1);
  EXPECT_FALSE(capturing_known.has_value());  // nobody needed to ask
  ExpectInvariants();
}

TEST_F(BlockLifecycleTest, AnotherStreamsCachedBlockIsBorrowedBehindAnEvent) {
  Block* owned = Allocated(kOther);
  ASSERT_TRUE(FreeNotCached(owned).ok());
  std::optional<bool> capturing_known;
  auto served = parts_.lifecycle.ServeFromHeap(GrowthRequest{kRequest, kRequest, false, kHome},
                                               /*fresh_addresses=*/false, capturing_known);
  ASSERT_TRUE(served.has_value() && served->ok());
  EXPECT_EQ(parts_.stats.num_cross_stream_reuse, 1);
  EXPECT_EQ(parts_.device.Calls(SimOp::kStreamWaitEvent), 1);  // kHome waits on kOther's work
  EXPECT_EQ(capturing_known, std::optional<bool>(false));      // asked before borrowing
  ExpectInvariants();
}

TEST_F(BlockLifecycleTest, WhatNothingCachedServesIsLeftToGrowthWithTheCacheFlushed) {
  FreeIntoCache(Allocated(kOther));
  std::optional<bool> capturing_known;
  auto served = parts_.lifecycle.ServeFromHeap(GrowthRequest{64 * kMiB, 64 * kMiB, false, kHome},
                                               /*fresh_addresses=*/false, capturing_known);
  EXPECT_FALSE(served.has_value());
  EXPECT_TRUE(parts_.reuse_cache.empty());  // growth sees the true free space
  EXPECT_TRUE(capturing_known.has_value());
  ExpectInvariants();
}

TEST_F(BlockLifecycleTest, AFreeNoOtherStreamUsedReturnsToThePoolAtOnce) {
  Block* block = Allocated(kHome);
  ASSERT_TRUE(FreeNotCached(block).ok());
  EXPECT_TRUE(parts_.heap.segments().begin()->second->IsWhollyFree());
  EXPECT_FALSE(parts_.frees.has_pending());
  EXPECT_EQ(parts_.stats.active.all().current, 0);
  ExpectInvariants();
}

TEST_F(BlockLifecycleTest, ACompletedPendingFreeEntersTheCacheOnlyOnTheAllocationPath) {
  Block* first = Allocated(kHome);
  Block* second = Allocated(kHome);
  first->stream_uses.push_back(kOther);
  second->stream_uses.push_back(kOther);
  parts_.device.SubmitWork(kOther);  // still running when they are freed
  ASSERT_TRUE(FreeNotCached(first).ok());
  EXPECT_EQ(first->state, BlockState::kPendingFree);
  parts_.device.CompleteStream(kOther);
  ASSERT_TRUE(parts_.lifecycle.ReturnCompletedFrees(0, /*into_reuse_cache=*/false).ok());
  EXPECT_EQ(first->state, BlockState::kFree);  // a synchronization's path: back to the pool
  EXPECT_TRUE(parts_.reuse_cache.empty());
  ExpectInvariants();

  parts_.device.SubmitWork(kOther);
  ASSERT_TRUE(FreeNotCached(second).ok());
  parts_.device.CompleteStream(kOther);
  ASSERT_TRUE(parts_.lifecycle.ReturnCompletedFrees(0, /*into_reuse_cache=*/true).ok());
  EXPECT_EQ(second->state, BlockState::kCached);  // whole, for its stream's next request
  EXPECT_TRUE(parts_.allocated_or_cached.contains(second->addr));
  ExpectInvariants();
}

TEST_F(BlockLifecycleTest, ABorrowedBlocksFreeWaitsForTheBorrowersWork) {
  Block* block = Allocated(kHome);
  block->alloc_stream = kOther;  // as if kOther had borrowed it from kHome's cache
  parts_.device.SubmitWork(kOther);
  ASSERT_TRUE(FreeNotCached(block).ok());
  EXPECT_EQ(block->state, BlockState::kPendingFree);
  EXPECT_EQ(parts_.device.Calls(SimOp::kRecordEvent), 1);  // on the borrower's stream
  parts_.device.CompleteStream(kOther);
  ASSERT_TRUE(parts_.lifecycle.ReturnCompletedFrees(0, /*into_reuse_cache=*/false).ok());
  EXPECT_EQ(block->state, BlockState::kFree);
  ExpectInvariants();
}

TEST_F(BlockLifecycleTest, AFreeADestroyedStreamUsedWaitsForADeviceSynchronization) {
  Block* block = Allocated(kHome);
  block->used_by_destroyed_stream = true;
  ASSERT_TRUE(FreeNotCached(block).ok());
  EXPECT_EQ(block->state, BlockState::kPendingFree);
  EXPECT_EQ(parts_.device.Calls(SimOp::kRecordEvent), 0);
  ASSERT_TRUE(parts_.lifecycle.ReturnCompletedFrees(parts_.frees.newest_order(), false).ok());
  EXPECT_EQ(block->state, BlockState::kFree);
  ExpectInvariants();
}

TEST_F(BlockLifecycleTest, ForgettingEverythingDetachesEverySegment) {
  Block* live = Allocated(kHome);
  FreeIntoCache(Allocated(kOther));
  (void)live;
  std::vector<Segment*> released = parts_.lifecycle.ForgetAll();
  EXPECT_EQ(released.size(), 2u);
  EXPECT_TRUE(parts_.allocated_or_cached.empty());
  EXPECT_TRUE(parts_.heap.segments().empty());
  EXPECT_TRUE(parts_.reuse_cache.empty());
  EXPECT_EQ(parts_.stats.allocation.all().current, 0);
  EXPECT_EQ(parts_.stats.segment.all().current, 0);
  EXPECT_EQ(parts_.stats.inactive_split.all().current, 0);
  for (Segment* segment : released) {
    ASSERT_TRUE(parts_.device.Free(segment->base).ok());
    delete segment;
  }
}

}  // namespace
}  // namespace vramcache
