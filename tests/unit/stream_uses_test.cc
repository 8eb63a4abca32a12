// The streams besides its own that use an allocated block, against StreamUses' interface with
// the stream-ordered frees on simulated devices: record_stream adds a stream of this device
// once, ignores the allocating stream, refuses a block being freed and a stream of a device it
// does not know, and gives another known device's stream to foreign_uses; a borrowed block's
// allocating stream becomes a use at its free; a destroyed stream marks exactly the allocated
// blocks it allocated, owns or used.
#include "allocator/core/stream_uses.h"

#include <vector>

#include "absl/container/flat_hash_map.h"
#include "allocator/core/block_heap.h"
#include "allocator/core/stats_ledger.h"
#include "allocator/device/sim_device.h"
#include "gtest/gtest.h"

namespace vramcache {
namespace {

constexpr StreamHandle kHome = 11;
constexpr StreamHandle kOther = 12;
constexpr DevicePtr kUserPtr = 0x40000000;

class StreamUsesTest : public ::testing::Test {
 protected:
  StreamUsesTest() {
    block_.state = BlockState::kAllocated;
    block_.stream = kHome;
    block_.alloc_stream = kHome;
  }

  SimDevice device_;
  DeviceStats stats_;
  StatsLedger ledger_{&stats_, /*max_split_size=*/SIZE_MAX};
  BlockHeap heap_{&ledger_, /*first_fit_large=*/false};
  StreamOrderedFrees frees_{&device_, &heap_, &ledger_, [](Block*) {}};
  StreamUses uses_{/*ordinal=*/0, &frees_};
  Block block_;
};

TEST_F(StreamUsesTest, AStreamOfThisDeviceIsRecordedOnce) {
  ASSERT_TRUE(uses_.Record(&block_, kOther, kUserPtr).ok());
  ASSERT_TRUE(uses_.Record(&block_, kOther, kUserPtr).ok());
  EXPECT_EQ(block_.stream_uses.size(), 1u);
  EXPECT_EQ(block_.stream_uses[0], kOther);
  EXPECT_TRUE(block_.foreign_uses.empty());
}

TEST_F(StreamUsesTest, TheAllocatingStreamIsNoUse) {
  ASSERT_TRUE(uses_.Record(&block_, kHome, kUserPtr).ok());
  EXPECT_TRUE(block_.stream_uses.empty());
  EXPECT_EQ(device_.Calls(SimOp::kStreamOrdinal), 0);  // not even its device is asked
}

TEST_F(StreamUsesTest, ABlockBeingFreedIsRefused) {
  block_.freeing = true;
  absl::Status status = uses_.Record(&block_, kOther, kUserPtr);
  EXPECT_TRUE(absl::IsInvalidArgument(status)) << status;
  EXPECT_NE(status.message().find("being freed"), absl::string_view::npos) << status;
  EXPECT_TRUE(block_.stream_uses.empty());
}

TEST_F(StreamUsesTest, AnotherDevicesStreamNeedsThatDeviceKnown) {
  SimDeviceOptions peer_options;
  peer_options.ordinal = 1;
  SimDevice peer(peer_options);
  const StreamHandle foreign = peer.CreateStream();
  absl::Status unknown = uses_.Record(&block_, foreign, kUserPtr);
  EXPECT_TRUE(absl::IsInvalidArgument(unknown)) << unknown;
  EXPECT_NE(unknown.message().find("SetPeerDevices"), absl::string_view::npos) << unknown;
  EXPECT_TRUE(block_.foreign_uses.empty());

  uses_.SetPeerDevices([&](int ordinal) -> Device* { return ordinal == 1 ? &peer : nullptr; });
  ASSERT_TRUE(uses_.Record(&block_, foreign, kUserPtr).ok());
  ASSERT_TRUE(uses_.Record(&block_, foreign, kUserPtr).ok());
  ASSERT_EQ(block_.foreign_uses.size(), 1u);  // that device's event, recorded at the free
  EXPECT_EQ(block_.foreign_uses[0].first, &peer);
  EXPECT_EQ(block_.foreign_uses[0].second, foreign);
  EXPECT_TRUE(block_.stream_uses.empty());
  ASSERT_TRUE(peer.DestroyStream(foreign).ok());
}

TEST_F(StreamUsesTest, ABorrowersStreamIsAUseOfTheBlockItBorrowed) {
  StreamUses::AddBorrower(&block_);  // allocated on its own stream: nothing to add
  EXPECT_TRUE(block_.stream_uses.empty());
  block_.alloc_stream = kOther;  // borrowed from kHome's cache
  StreamUses::AddBorrower(&block_);
  StreamUses::AddBorrower(&block_);
  ASSERT_EQ(block_.stream_uses.size(), 1u);
  EXPECT_EQ(block_.stream_uses[0], kOther);
}

TEST_F(StreamUsesTest, ADestroyedStreamMarksTheAllocatedBlocksItTouched) {
  constexpr StreamHandle kDead = 13;
  Block owned, allocated_there, used_there, untouched, cached;
  for (Block* b : {&owned, &allocated_there, &used_there, &untouched, &cached}) {
    b->state = BlockState::kAllocated;
    b->stream = kHome;
    b->alloc_stream = kHome;
  }
  owned.stream = kDead;
  owned.alloc_stream = kDead;
  allocated_there.alloc_stream = kDead;
  used_there.stream_uses.push_back(kDead);
  cached.state = BlockState::kCached;  // waiting in the reuse cache: no user's work to wait for
  cached.alloc_stream = kDead;
  const absl::flat_hash_map<DevicePtr, Block*> map = {
      {1, &owned}, {2, &allocated_there}, {3, &used_there}, {4, &untouched}, {5, &cached}};
  StreamUses::MarkUsedByDestroyed(map, kDead);
  EXPECT_TRUE(owned.used_by_destroyed_stream);
  EXPECT_TRUE(allocated_there.used_by_destroyed_stream);
  EXPECT_TRUE(used_there.used_by_destroyed_stream);
  EXPECT_FALSE(untouched.used_by_destroyed_stream);
  EXPECT_FALSE(cached.used_by_destroyed_stream);
}

}  // namespace
}  // namespace vramcache
