// The debug modes' steps in a block's life, against DebugHooks' interface on the simulated
// device: the guarded geometry puts the user's pointer after the front band; a checked free
// marks the block as being freed, and says when its stream is dead; a user's free marks the
// poison only for the shared pool's blocks that are not single-use; the poison is written once,
// when the free completes, never on a destroyed stream; the canary check covers only allocated
// blocks and is refused during a capture.
#include "allocator/core/debug_hooks.h"

#include "absl/container/flat_hash_map.h"
#include "allocator/core/block_heap.h"
#include "allocator/core/config.h"
#include "allocator/core/stats_ledger.h"
#include "allocator/device/sim_device.h"
#include "gtest/gtest.h"

namespace vramcache {
namespace {

constexpr StreamHandle kHome = 11;

AllocatorConfig DebugConfig() {
  AllocatorConfig config;
  config.canaries = true;
  config.poison_on_free = true;
  return config;
}

class DebugHooksTest : public ::testing::Test {
 protected:
  DebugHooksTest() {
    base_ = device_.Malloc(4 * kMiB).value();
    segment_.base = base_;
    segment_.size = 4 * kMiB;
    segment_.stream = kHome;
    block_.addr = base_;
    block_.size = 8 * kKiB;
    block_.requested = 4 * kKiB;
    block_.stream = kHome;
    block_.alloc_stream = kHome;
    block_.segment = &segment_;
    block_.state = BlockState::kAllocated;
  }
  ~DebugHooksTest() override { device_.Free(base_).IgnoreError(); }

  SimDevice device_;
  AllocatorConfig config_ = DebugConfig();
  DebugGuard guard_{&device_, config_};
  DeviceStats stats_;
  StatsLedger ledger_{&stats_, /*max_split_size=*/SIZE_MAX};
  TickClock clock_;
  BlockHeap heap_{&ledger_, /*first_fit_large=*/false};
  StreamOrderedFrees frees_{&device_, &heap_, &ledger_, [](Block*) {}};
  AllocationHistory history_{config_, &clock_};
  DebugHooks hooks_{&guard_, &frees_, &history_};
  DevicePtr base_ = 0;
  Segment segment_;
  Block block_;
};

TEST_F(DebugHooksTest, TheUsersPointerFollowsTheFrontBand) {
  const GuardedBlock guarded = hooks_.Guarded(&block_);
  EXPECT_EQ(guarded.block_addr, base_);
  EXPECT_EQ(guarded.block_size, 8 * kKiB);
  EXPECT_EQ(guarded.user_ptr, base_ + kCanaryFrontBytes);
  EXPECT_EQ(guarded.user_size, 4 * kKiB);
  EXPECT_EQ(guarded.stream, kHome);
}

TEST_F(DebugHooksTest, ACheckedFreeMarksTheBlockAndSaysWhenItsStreamIsDead) {
  EXPECT_FALSE(hooks_.BeginCheckedFree(&block_).stream_dead);
  EXPECT_TRUE(block_.freeing);
  block_.freeing = false;
  frees_.MarkDestroyed(kHome);
  EXPECT_TRUE(hooks_.BeginCheckedFree(&block_).stream_dead);  // its bands wait for CheckAll
}

TEST_F(DebugHooksTest, OnlyTheSharedPoolsReusableBlocksAreMarkedForPoison) {
  ASSERT_TRUE(hooks_.OnUserFree(&block_, absl::OkStatus()).ok());
  EXPECT_TRUE(block_.poison_pending);
  block_.poison_pending = false;
  block_.pool_id = 7;  // a private pool's: its graph's replays still use it
  ASSERT_TRUE(hooks_.OnUserFree(&block_, absl::OkStatus()).ok());
  EXPECT_FALSE(block_.poison_pending);
  block_.pool_id = kDefaultPool;
  segment_.single_use = true;  // unmap_on_free's: unmapped instead
  ASSERT_TRUE(hooks_.OnUserFree(&block_, absl::OkStatus()).ok());
  EXPECT_FALSE(block_.poison_pending);
}

TEST_F(DebugHooksTest, ADamagedBandsReportIsReturned) {
  const absl::Status damaged = absl::DataLossError("back band overwritten");
  absl::Status status = hooks_.OnUserFree(&block_, damaged);
  EXPECT_TRUE(absl::IsDataLoss(status)) << status;
  EXPECT_TRUE(block_.poison_pending);  // the free completes all the same
}

TEST_F(DebugHooksTest, ThePoisonIsWrittenOnceWhenTheFreeCompletes) {
  block_.poison_pending = true;
  device_.ResetCallCounts();
  hooks_.PoisonIfPending(&block_);
  EXPECT_EQ(device_.Calls(SimOp::kFill), 1);
  EXPECT_FALSE(block_.poison_pending);
  hooks_.PoisonIfPending(&block_);
  EXPECT_EQ(device_.Calls(SimOp::kFill), 1);
}

TEST_F(DebugHooksTest, NoPoisonIsWrittenOnADestroyedStream) {
  block_.poison_pending = true;
  frees_.MarkDestroyed(kHome);
  device_.ResetCallCounts();
  hooks_.PoisonIfPending(&block_);
  EXPECT_EQ(device_.Calls(SimOp::kFill), 0);
  EXPECT_FALSE(block_.poison_pending);
}

TEST_F(DebugHooksTest, TheCanaryCheckCoversAllocatedBlocksOutsideCaptures) {
  ASSERT_TRUE(hooks_.OnAllocate(&block_).ok());  // bands written
  Block cached = block_;
  cached.addr = base_ + 1 * kMiB;  // never written: checking it would fail in memory mode
  cached.state = BlockState::kCached;
  const absl::flat_hash_map<DevicePtr, Block*> map = {{block_.addr, &block_},
                                                      {cached.addr, &cached}};
  absl::Status refused = hooks_.CheckLiveBlocks(map, /*capture_under_way=*/true);
  EXPECT_TRUE(absl::IsFailedPrecondition(refused)) << refused;
  device_.ResetCallCounts();
  EXPECT_TRUE(hooks_.CheckLiveBlocks(map, /*capture_under_way=*/false).ok());
  EXPECT_EQ(device_.Calls(SimOp::kFill), 1);  // one verification call for all
}

}  // namespace
}  // namespace vramcache
