// Stream-ordered frees: a free another stream used waits for that stream's event; a device
// synchronization covers only the frees that existed when it began; a destroyed stream's frees
// wait for a synchronization and its cached blocks are parked behind an event; frees during a
// capture record their events when it ends; borrowing orders the borrower after the owner;
// each stream's device is asked once; shutdown hands back every event.
#include "allocator/core/stream_ordered_frees.h"

#include <cstddef>
#include <vector>

#include "allocator/core/block_heap.h"
#include "allocator/core/config.h"
#include "allocator/core/stats_ledger.h"
#include "allocator/device/sim_device.h"
#include "gtest/gtest.h"

namespace vramcache {
namespace {

constexpr StreamHandle kHome = 11;
constexpr StreamHandle kOther = 12;

SimDeviceOptions ManualCompletion() {
  SimDeviceOptions options;
  options.completion = SimCompletion::kManual;
  return options;
}

class StreamOrderedFreesTest : public ::testing::Test {
 protected:
  ~StreamOrderedFreesTest() override {
    for (EventHandle event : frees_.ForgetAll()) device_.DestroyEvent(event).IgnoreError();
    for (auto& [base, segment] : heap_.segments()) {
      heap_.ForgetSegmentBlocks(segment);
      delete segment;
    }
    heap_.Clear();
  }

  // A block allocated on `home`, alone in a segment of its own.
  Block* Allocated(StreamHandle home) {
    Segment* segment = heap_.Adopt(next_base_, 2 * kMiB, /*small=*/false, home, kDefaultPool);
    next_base_ += 2 * kMiB;
    segment->head->state = BlockState::kAllocated;
    segment->head->alloc_stream = home;
    return segment->head;
  }
  // A free block cached for `home`, alone in a segment of its own.
  Block* Cached(StreamHandle home) {
    Block* block = Allocated(home);
    block->state = BlockState::kFree;
    heap_.AddFreeBlock(block);
    return block;
  }

  SimDevice device_{ManualCompletion()};
  DeviceStats stats_;
  StatsLedger ledger_{&stats_, /*max_split_size=*/SIZE_MAX};
  BlockHeap heap_{&ledger_, /*first_fit_large=*/false};
  std::vector<Block*> returned_;  // what return_to_pool got, in order
  StreamOrderedFrees frees_{&device_, &heap_, &ledger_,
                            [this](Block* block) { returned_.push_back(block); }};
  DevicePtr next_base_ = 0x40000000;
};

TEST_F(StreamOrderedFreesTest, AFreeAnotherStreamUsedWaitsForThatStreamsEvent) {
  Block* block = Allocated(kHome);
  block->stream_uses.push_back(kOther);
  device_.SubmitWork(kOther);  // still running when the block is freed
  ASSERT_TRUE(frees_.DeferFree(block).ok());
  EXPECT_EQ(block->state, BlockState::kPendingFree);
  EXPECT_TRUE(frees_.has_pending());
  EXPECT_EQ(frees_.pending_bytes(), 2 * kMiB);
  EXPECT_EQ(device_.Calls(SimOp::kRecordEvent), 1);

  ASSERT_TRUE(frees_.ReturnCompleted(/*synced_through=*/0).ok());
  EXPECT_TRUE(returned_.empty());
  device_.CompleteStream(kOther);
  ASSERT_TRUE(frees_.ReturnCompleted(/*synced_through=*/0).ok());
  EXPECT_EQ(returned_, std::vector<Block*>{block});
  EXPECT_FALSE(frees_.has_pending());
  EXPECT_EQ(frees_.pending_bytes(), 0u);

  // The completed event is recorded again for the next such free: none is created.
  Block* second = Allocated(kHome);
  second->stream_uses.push_back(kOther);
  ASSERT_TRUE(frees_.DeferFree(second).ok());
  EXPECT_EQ(device_.Calls(SimOp::kCreateEvent), 1);
}

TEST_F(StreamOrderedFreesTest, ASynchronizationCoversOnlyTheFreesThatExistedWhenItBegan) {
  device_.SubmitWork(kOther);
  Block* before = Allocated(kHome);
  before->stream_uses.push_back(kOther);
  ASSERT_TRUE(frees_.DeferFree(before).ok());
  const std::uint64_t synced_through = frees_.newest_order();  // a synchronization begins
  Block* after = Allocated(kHome);  // freed while the lock was dropped for it
  after->stream_uses.push_back(kOther);
  ASSERT_TRUE(frees_.DeferFree(after).ok());
  ASSERT_TRUE(frees_.ReturnCompleted(synced_through).ok());
  EXPECT_EQ(returned_, std::vector<Block*>{before});
  EXPECT_TRUE(frees_.has_pending());
}

TEST_F(StreamOrderedFreesTest, AFreeADestroyedStreamUsedWaitsForADeviceSynchronization) {
  Block* block = Allocated(kHome);
  block->used_by_destroyed_stream = true;
  frees_.AwaitDeviceSynchronization(block);
  EXPECT_EQ(device_.Calls(SimOp::kRecordEvent), 0);
  ASSERT_TRUE(frees_.ReturnCompleted(/*synced_through=*/0).ok());
  EXPECT_TRUE(returned_.empty());  // no event can ever prove it
  ASSERT_TRUE(frees_.ReturnCompleted(frees_.newest_order()).ok());
  EXPECT_EQ(returned_, std::vector<Block*>{block});
  EXPECT_FALSE(block->used_by_destroyed_stream);
}

TEST_F(StreamOrderedFreesTest, FreesDuringACaptureRecordTheirEventsWhenItEnds) {
  Block* block = Allocated(kHome);
  block->stream_uses.push_back(kOther);
  frees_.DeferUntilCaptureEnds(block);
  EXPECT_EQ(block->state, BlockState::kPendingFree);
  EXPECT_EQ(frees_.pending_bytes(), 2 * kMiB);
  EXPECT_EQ(device_.Calls(SimOp::kRecordEvent), 0);
  ASSERT_TRUE(frees_.CaptureEnded().ok());
  EXPECT_EQ(device_.Calls(SimOp::kRecordEvent), 1);
  EXPECT_TRUE(frees_.has_pending());
  EXPECT_EQ(frees_.pending_bytes(), 2 * kMiB);  // counted once
}

TEST_F(StreamOrderedFreesTest, ADestroyedStreamsCachedBlocksAreParkedUntilItsLastWorkCompletes) {
  Block* cached = Cached(kHome);
  device_.SubmitWork(kHome);  // the stream's last work, still running
  frees_.MarkDestroyed(kHome);
  ASSERT_TRUE(frees_.ParkFor(kHome).ok());
  EXPECT_TRUE(frees_.IsDestroyed(kHome));
  EXPECT_EQ(cached->state, BlockState::kParked);
  EXPECT_TRUE(heap_.large_free().empty());
  EXPECT_EQ(frees_.pending_bytes(), 2 * kMiB);

  ASSERT_TRUE(frees_.ReturnCompleted(/*synced_through=*/0).ok());
  EXPECT_EQ(cached->state, BlockState::kParked);
  device_.CompleteStream(kHome);
  ASSERT_TRUE(frees_.ReturnCompleted(/*synced_through=*/0).ok());
  EXPECT_EQ(cached->state, BlockState::kFree);  // straight back into the heap
  EXPECT_EQ(heap_.large_free().size(), 1u);
  EXPECT_TRUE(returned_.empty());  // it held nobody's data: no free completes

  frees_.StreamUsed(kHome);  // a new stream got the handle
  EXPECT_FALSE(frees_.IsDestroyed(kHome));
}

TEST_F(StreamOrderedFreesTest, APendingFreeReturningToADestroyedStreamAlsoWaitsForIt) {
  Block* block = Allocated(kHome);
  block->stream_uses.push_back(kOther);
  ASSERT_TRUE(frees_.DeferFree(block).ok());  // kOther's event completes at once
  device_.SubmitWork(kHome);
  frees_.MarkDestroyed(kHome);
  ASSERT_TRUE(frees_.ParkFor(kHome).ok());
  ASSERT_TRUE(frees_.ReturnCompleted(/*synced_through=*/0).ok());
  EXPECT_TRUE(returned_.empty());  // the home stream's event has not completed
  device_.CompleteStream(kHome);
  ASSERT_TRUE(frees_.ReturnCompleted(/*synced_through=*/0).ok());
  EXPECT_EQ(returned_, std::vector<Block*>{block});
}

TEST_F(StreamOrderedFreesTest, ABorrowerWaitsOnAnEventRecordedOnTheOwner) {
  const Block* block = Cached(kHome);
  device_.SubmitWork(kHome);
  EXPECT_TRUE(frees_.OrderAfterOwner(block, kOther, CrossStreamPolicy::kWait).value());
  EXPECT_EQ(device_.Calls(SimOp::kStreamWaitEvent), 1);
  // kQuery takes it only once the owner's work has completed.
  EXPECT_FALSE(frees_.OrderAfterOwner(block, kOther, CrossStreamPolicy::kQuery).value());
  device_.CompleteStream(kHome);
  EXPECT_TRUE(frees_.OrderAfterOwner(block, kOther, CrossStreamPolicy::kQuery).value());
  EXPECT_EQ(device_.Calls(SimOp::kCreateEvent), 1);  // one event, recycled
}

TEST_F(StreamOrderedFreesTest, NothingIsBorrowedFromACapturingOwner) {
  const Block* block = Cached(kHome);
  device_.SetCapturing(kHome, true);
  EXPECT_FALSE(frees_.OrderAfterOwner(block, kOther, CrossStreamPolicy::kWait).value());
  EXPECT_EQ(device_.Calls(SimOp::kRecordEvent), 0);
  device_.SetCapturing(kHome, false);
}

TEST_F(StreamOrderedFreesTest, ADestroyedOwnersBlockIsBorrowedWithoutAnyDeviceCall) {
  const Block* block = Cached(kHome);
  frees_.MarkDestroyed(kHome);
  device_.ResetCallCounts();
  EXPECT_TRUE(frees_.OrderAfterOwner(block, kOther, CrossStreamPolicy::kWait).value());
  EXPECT_EQ(device_.Calls(SimOp::kIsCapturing), 0);
  EXPECT_EQ(device_.Calls(SimOp::kRecordEvent), 0);
}

TEST_F(StreamOrderedFreesTest, AStreamsDeviceIsAskedOnceUntilTheStreamIsDestroyed) {
  EXPECT_EQ(frees_.StreamOrdinal(kOther).value(), 0);
  EXPECT_EQ(frees_.StreamOrdinal(kOther).value(), 0);
  EXPECT_EQ(device_.Calls(SimOp::kStreamOrdinal), 1);
  frees_.MarkDestroyed(kOther);
  EXPECT_EQ(frees_.StreamOrdinal(kOther).value(), 0);
  EXPECT_EQ(device_.Calls(SimOp::kStreamOrdinal), 2);
}

TEST_F(StreamOrderedFreesTest, ShutdownForgetsEveryPendingFreeAndHandsBackItsEvents) {
  device_.SubmitWork(kOther);
  Block* block = Allocated(kHome);
  block->stream_uses.push_back(kOther);
  ASSERT_TRUE(frees_.DeferFree(block).ok());
  std::vector<EventHandle> events = frees_.ForgetAll();
  EXPECT_EQ(events.size(), 1u);
  EXPECT_FALSE(frees_.has_pending());
  EXPECT_EQ(frees_.pending_bytes(), 0u);
  for (EventHandle event : events) ASSERT_TRUE(device_.DestroyEvent(event).ok());
  device_.CompleteStream(kOther);
}

}  // namespace
}  // namespace vramcache
