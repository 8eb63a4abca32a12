// Graph pools: a capture routes the requests its filter takes to its private pool, a pool is
// released only when its last use is dropped, a released pool waits for the synchronization
// that follows its release, an announced capture is known without asking the device while an
// unannounced one is asked of it, and a released pool's free segments rejoin the shared pool.
#include "allocator/core/graph_pools.h"

#include <cstddef>
#include <optional>
#include <vector>

#include "allocator/core/block_heap.h"
#include "allocator/core/config.h"
#include "allocator/core/stats_ledger.h"
#include "allocator/device/sim_device.h"
#include "gtest/gtest.h"

namespace vramcache {
namespace {

constexpr PoolId kGraphPool = 7;
constexpr StreamHandle kCaptured = 11;
constexpr StreamHandle kOther = 12;

class GraphPoolsTest : public ::testing::Test {
 protected:
  SimDevice device_;
  GraphPools pools_{&device_};
};

TEST_F(GraphPoolsTest, RequestsGoToTheSharedPoolWithoutACapture) {
  EXPECT_EQ(pools_.PoolFor(kCaptured), kDefaultPool);
  EXPECT_FALSE(pools_.capture_under_way());
}

TEST_F(GraphPoolsTest, ACaptureTakesOnlyTheStreamsItsFilterTakes) {
  pools_.BeginCapture(kGraphPool, [](StreamHandle s) { return s == kCaptured; });
  EXPECT_TRUE(pools_.capture_under_way());
  EXPECT_EQ(pools_.PoolFor(kCaptured), kGraphPool);
  EXPECT_EQ(pools_.PoolFor(kOther), kDefaultPool);
  ASSERT_TRUE(pools_.EndCapture(kGraphPool).ok());
  EXPECT_EQ(pools_.PoolFor(kCaptured), kDefaultPool);
}

TEST_F(GraphPoolsTest, ACaptureWithoutAFilterTakesEveryStream) {
  pools_.BeginCapture(kGraphPool, nullptr);
  EXPECT_EQ(pools_.PoolFor(kOther), kGraphPool);
}

TEST_F(GraphPoolsTest, EndingACaptureNobodyBeganIsRefused) {
  EXPECT_EQ(pools_.EndCapture(kGraphPool).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(pools_.DropUse(kGraphPool).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(GraphPoolsTest, APoolIsReleasedWhenItsLastUseIsDropped) {
  pools_.BeginCapture(kGraphPool, nullptr);
  pools_.BeginCapture(kGraphPool, nullptr);  // a second graph captured into the same pool
  ASSERT_TRUE(pools_.EndCapture(kGraphPool).ok());
  ASSERT_TRUE(pools_.EndCapture(kGraphPool).ok());
  EXPECT_FALSE(pools_.Releasable(kGraphPool));
  EXPECT_EQ(pools_.DropUse(kGraphPool).value(), false);
  EXPECT_FALSE(pools_.Releasable(kGraphPool));
  EXPECT_EQ(pools_.DropUse(kGraphPool).value(), true);
  EXPECT_TRUE(pools_.Releasable(kGraphPool));
  EXPECT_TRUE(pools_.Releasable(kDefaultPool));
  // Captured into again, it belongs to a graph once more.
  pools_.BeginCapture(kGraphPool, nullptr);
  EXPECT_FALSE(pools_.Releasable(kGraphPool));
}

TEST_F(GraphPoolsTest, AReleasedPoolWaitsForASynchronizationThatBeganAfterItsRelease) {
  pools_.AwaitSynchronization(kGraphPool, /*order=*/5);
  pools_.MarkSynchronized(/*synced_through=*/4);  // began before the release
  EXPECT_TRUE(pools_.unsynced_pools().contains(kGraphPool));
  pools_.MarkSynchronized(/*synced_through=*/5);
  EXPECT_TRUE(pools_.unsynced_pools().empty());
}

TEST_F(GraphPoolsTest, AnAnnouncedCaptureIsKnownWithoutAskingTheDevice) {
  pools_.BeginCapture(kGraphPool, nullptr);
  device_.ResetCallCounts();
  EXPECT_TRUE(pools_.Capturing(kOther));
  EXPECT_TRUE(pools_.AnyCapturing({kOther}));
  EXPECT_EQ(device_.Calls(SimOp::kIsCapturing), 0);
}

TEST_F(GraphPoolsTest, AnUnannouncedCaptureIsAskedOfTheDeviceOncePerAllocation) {
  device_.SetCapturing(kCaptured, true);
  device_.ResetCallCounts();
  EXPECT_TRUE(pools_.Capturing(kCaptured));
  EXPECT_FALSE(pools_.Capturing(kOther));
  EXPECT_TRUE(pools_.AnyCapturing({kOther, kCaptured}));
  EXPECT_FALSE(pools_.AnyCapturing({kOther}));
  std::optional<bool> known;
  device_.ResetCallCounts();
  EXPECT_TRUE(pools_.KnowCapturing(known, kCaptured));
  EXPECT_TRUE(pools_.KnowCapturing(known, kCaptured));
  EXPECT_EQ(device_.Calls(SimOp::kIsCapturing), 1);
  device_.SetCapturing(kCaptured, false);
}

// A released pool's wholly free segment rejoins the shared pool once synchronized; a pinned one
// is unpinned and its range handed to the backing to release.
TEST_F(GraphPoolsTest, AReleasedPoolsFreeSegmentsRejoinTheSharedPool) {
  DeviceStats stats;
  StatsLedger ledger(&stats, /*max_split_size=*/SIZE_MAX);
  BlockHeap heap(&ledger, /*first_fit_large=*/false);
  Segment* segment = heap.Adopt(0x40000000, 20 * kMiB, /*small=*/false, kCaptured, kGraphPool);
  segment->pinned = true;
  heap.AddFreeBlock(segment->head);
  std::vector<Segment*> released_ranges;
  auto release = [&](Segment* s) { released_ranges.push_back(s); };

  pools_.BeginCapture(kGraphPool, nullptr);
  ASSERT_TRUE(pools_.EndCapture(kGraphPool).ok());
  pools_.RejoinSharedPool(heap, release);  // the pool lives: nothing moves
  EXPECT_EQ(segment->pool_id, kGraphPool);

  ASSERT_TRUE(pools_.DropUse(kGraphPool).value());
  pools_.AwaitSynchronization(kGraphPool, /*order=*/1);
  pools_.RejoinSharedPool(heap, release);  // its replays may still run
  EXPECT_EQ(segment->pool_id, kGraphPool);
  EXPECT_TRUE(released_ranges.empty());

  pools_.MarkSynchronized(1);
  pools_.RejoinSharedPool(heap, release);
  EXPECT_EQ(segment->pool_id, kDefaultPool);
  EXPECT_EQ(segment->head->pool_id, kDefaultPool);
  EXPECT_FALSE(segment->pinned);
  EXPECT_EQ(released_ranges, std::vector<Segment*>{segment});
  ASSERT_EQ(heap.large_free().size(), 1u);
  EXPECT_EQ((*heap.large_free().begin())->pool_id, kDefaultPool);

  heap.ForgetSegmentBlocks(segment);
  delete segment;
  heap.Clear();
}

}  // namespace
}  // namespace vramcache
