// The invariant recount against hand-built heaps: a consistent one passes, and each kind of
// damage (a counter off, blocks left uncoalesced, a free block outside its free set, a reuse
// list holding a block of another key) is named.
#include "allocator/core/invariant_check.h"

#include <cstddef>

#include "absl/container/btree_map.h"
#include "absl/container/flat_hash_map.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace vramcache {
namespace {

using ::testing::HasSubstr;

constexpr std::size_t kSegmentBytes = 2 << 20;
constexpr DevicePtr kBase = 0x10000000;

// One small segment of two blocks: the first allocated (1 MiB), the second free. Statistics as
// the allocator would keep them.
class InvariantCheckTest : public ::testing::Test {
 protected:
  InvariantCheckTest() {
    segment_.base = kBase;
    segment_.size = kSegmentBytes;
    segment_.small = true;
    allocated_.addr = kBase;
    allocated_.size = kSegmentBytes / 2;
    allocated_.requested = kSegmentBytes / 2 - 100;
    allocated_.state = BlockState::kAllocated;
    free_.addr = kBase + kSegmentBytes / 2;
    free_.size = kSegmentBytes / 2;
    free_.state = BlockState::kFree;
    for (Block* b : {&allocated_, &free_}) b->segment = &segment_;
    allocated_.next = &free_;
    free_.prev = &allocated_;
    segment_.head = &allocated_;
    segments_[kBase] = &segment_;
    small_free_.insert(&free_);
    live_[allocated_.addr] = &allocated_;

    stats_.segment.Increase(true, 1);
    stats_.reserved_bytes.Increase(true, kSegmentBytes);
    stats_.allocation.Increase(true, 1);
    stats_.allocated_bytes.Increase(true, static_cast<std::int64_t>(allocated_.size));
    stats_.requested_bytes.Increase(true, static_cast<std::int64_t>(allocated_.requested));
    stats_.active.Increase(true, 1);
    stats_.active_bytes.Increase(true, static_cast<std::int64_t>(allocated_.size));
    stats_.inactive_split.Increase(true, 1);
    stats_.inactive_split_bytes.Increase(true, static_cast<std::int64_t>(free_.size));
  }

  absl::Status Check() const {
    return CheckAllocatorInvariants(AllocatorStateView{
        .segments = segments_,
        .small_free = small_free_,
        .large_free = large_free_,
        .allocated_or_cached = live_,
        .first_fit_segments = first_fit_segments_,
        .reuse_cache = reuse_cache_,
        .vmm = nullptr,
        .stats = stats_,
    });
  }

  Segment segment_;
  Block allocated_;
  Block free_;
  absl::btree_map<DevicePtr, Segment*> segments_;
  FreeBlockSet small_free_;
  FreeBlockSet large_free_;
  absl::flat_hash_map<DevicePtr, Block*> live_;
  absl::btree_map<std::uint64_t, Segment*> first_fit_segments_;
  ReuseCache reuse_cache_{/*limit_bytes=*/kSegmentBytes};
  DeviceStats stats_;
};

TEST_F(InvariantCheckTest, ConsistentHeapPasses) { EXPECT_TRUE(Check().ok()) << Check(); }

TEST_F(InvariantCheckTest, CounterOffByOneIsNamed) {
  stats_.allocation.Increase(true, 1);
  EXPECT_THAT(Check().message(), HasSubstr("statistic allocation.all.current is 2"));
}

TEST_F(InvariantCheckTest, UncoalescedFreeNeighboursAreNamed) {
  allocated_.state = BlockState::kFree;
  small_free_.insert(&allocated_);
  live_.clear();
  EXPECT_THAT(Check().message(), HasSubstr("are free but not coalesced"));
}

TEST_F(InvariantCheckTest, FreeBlockOutsideItsFreeSetIsNamed) {
  small_free_.clear();
  EXPECT_THAT(Check().message(), HasSubstr("not in its free set"));
}

TEST_F(InvariantCheckTest, ReuseListHoldingABlockOfAnotherKeyIsNamed) {
  allocated_.state = BlockState::kCached;
  allocated_.rounded = allocated_.size;
  reuse_cache_.Push(&allocated_);
  allocated_.rounded = 512;  // now it serves another size than the list it waits in
  EXPECT_THAT(Check().message(), HasSubstr("reuse-cache list holds block"));
}

TEST_F(InvariantCheckTest, BlocksThatDoNotTileTheSegmentAreNamed) {
  free_.addr += 512;
  EXPECT_THAT(Check().message(), HasSubstr("does not tile it"));
}

}  // namespace
}  // namespace vramcache
