// The facade's blocking steps against their interface, on the simulated device and the
// allocator's real components in segment mode: growth serves a request from one new segment of
// the preferred size; growth past the device climbs the ladder to a report and keeps nothing;
// after shutdown growth makes no device allocation; synchronizing pending frees makes no device
// call when none is pending and returns every one that is; freeing detached segments gives each
// back to the device and counts it.
#include "allocator/core/blocking_steps.h"

#include <cstddef>
#include <cstdint>
#include <vector>

#include "allocator/base/mutex.h"
#include "allocator/core/size_classes.h"
#include "allocator/device/sim_device.h"
#include "gtest/gtest.h"
#include "tests/support/segment_mode_parts.h"

namespace vramcache {
namespace {

constexpr StreamHandle kHome = 7;
constexpr StreamHandle kOther = 8;

SimDeviceOptions SmallManualDevice() {
  SimDeviceOptions options;
  options.capacity = 256 * kMiB;
  options.completion = SimCompletion::kManual;
  return options;
}

class BlockingStepsTest : public ::testing::Test {
 protected:
  BlockingStepsTest() : parts_(SmallManualDevice()) {}

  GrowthRequest Request(std::size_t bytes) const {
    return GrowthRequest{bytes, bytes, /*small=*/false, kHome};
  }

  SegmentModeParts parts_;
  Mutex mu_;
  bool shut_down_ = false;
  BlockingSteps steps_{&parts_.device, &mu_, &parts_, &shut_down_, /*caching=*/true};
};

TEST_F(BlockingStepsTest, GrowthServesTheRequestFromOneNewSegmentOfThePreferredSize) {
  absl::StatusOr<void*> ptr = steps_.Grow(Request(4 * kMiB));
  ASSERT_TRUE(ptr.ok()) << ptr.status();
  EXPECT_EQ(parts_.device.Calls(SimOp::kMalloc), 1);
  EXPECT_EQ(parts_.stats.num_device_alloc, 1);
  EXPECT_EQ(parts_.stats.reserved_bytes.all().current,
            static_cast<std::int64_t>(SizeRounder::SegmentSizeFor(4 * kMiB)));
  EXPECT_EQ(parts_.stats.allocated_bytes.all().current, static_cast<std::int64_t>(4 * kMiB));
  EXPECT_TRUE(parts_.allocated_or_cached.contains(reinterpret_cast<DevicePtr>(*ptr)));
  EXPECT_TRUE(parts_.queries.CheckInvariants().ok());
}

TEST_F(BlockingStepsTest, GrowthPastTheDeviceEndsInAReportAndKeepsNothing) {
  absl::StatusOr<void*> ptr = steps_.Grow(Request(512 * kMiB));
  ASSERT_FALSE(ptr.ok());
  EXPECT_TRUE(absl::IsResourceExhausted(ptr.status())) << ptr.status();
  ASSERT_TRUE(parts_.rungs.last_oom().has_value());
  EXPECT_EQ(parts_.rungs.last_oom()->ToString(), ptr.status().message());
  EXPECT_EQ(parts_.stats.num_ooms, 1);
  EXPECT_EQ(parts_.stats.reserved_bytes.all().current, 0);
  EXPECT_EQ(parts_.device.LiveMallocs(), 0u);
}

TEST_F(BlockingStepsTest, AfterShutdownGrowthMakesNoDeviceAllocation) {
  shut_down_ = true;
  absl::StatusOr<void*> ptr = steps_.Grow(Request(4 * kMiB));
  EXPECT_TRUE(absl::IsFailedPrecondition(ptr.status())) << ptr.status();
  EXPECT_EQ(parts_.device.Calls(SimOp::kMalloc), 0);
}

TEST_F(BlockingStepsTest, WithNoPendingFreeASynchronizationIsNotMade) {
  ASSERT_TRUE(steps_.SynchronizePendingFrees().ok());
  EXPECT_EQ(parts_.device.Calls(SimOp::kSynchronizeDevice), 0);
  EXPECT_EQ(parts_.stats.num_sync_all_streams, 0);
}

TEST_F(BlockingStepsTest, ASynchronizationReturnsEveryPendingFree) {
  Block* block = parts_.AllocateFromNewSegment(kMiB, kHome);
  ASSERT_NE(block, nullptr);
  block->stream_uses.push_back(kOther);
  parts_.device.SubmitWork(kOther);  // never completes on its own (manual completion)
  ASSERT_TRUE(parts_.FreeNotCached(block).ok());
  ASSERT_TRUE(parts_.frees.has_pending());

  ASSERT_TRUE(steps_.SynchronizePendingFrees().ok());
  EXPECT_EQ(parts_.device.Calls(SimOp::kSynchronizeDevice), 1);
  EXPECT_EQ(parts_.stats.num_sync_all_streams, 1);
  EXPECT_FALSE(parts_.frees.has_pending());
  EXPECT_TRUE(parts_.heap.segments().begin()->second->IsWhollyFree());
  EXPECT_TRUE(parts_.queries.CheckInvariants().ok());
}

TEST_F(BlockingStepsTest, DetachedSegmentsGoBackToTheDeviceAndAreCounted) {
  parts_.AdoptSegment(20 * kMiB, kHome);
  parts_.AdoptSegment(20 * kMiB, kOther);
  std::vector<Segment*> detached = parts_.rungs.DetachReleasableSegments(SIZE_MAX);
  ASSERT_EQ(detached.size(), 2u);
  ASSERT_TRUE(steps_.FreeSegmentMemory(detached).ok());
  EXPECT_EQ(parts_.device.Calls(SimOp::kFree), 2);
  EXPECT_EQ(parts_.device.LiveMallocs(), 0u);
  EXPECT_EQ(parts_.stats.num_device_free, 2);
  EXPECT_EQ(parts_.stats.reserved_bytes.all().current, 0);
  EXPECT_TRUE(parts_.heap.segments().empty());
}

}  // namespace
}  // namespace vramcache
