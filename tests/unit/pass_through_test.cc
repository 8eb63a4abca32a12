// caching:off (PYTORCH_NO_CUDA_MEMORY_CACHING=1): every allocation is its own device
// allocation of the rounded size, and goes back to the device once its free has completed,
// after the streams that used it are done; statistics stay exact (recounted from outside).
#include <memory>
#include <vector>

#include "allocator/core/caching_allocator.h"
#include "allocator/device/sim_device.h"
#include "gtest/gtest.h"
#include "tests/support/allocator_fixture.h"
#include "tests/support/stats_recount.h"

namespace vramcache {
namespace {

class PassThroughTest : public AllocatorTest<> {
 protected:
  explicit PassThroughTest(SimCompletion completion = SimCompletion::kImmediate) {
    AllocatorSetup setup;
    setup.device.capacity = std::size_t{1} << 30;
    setup.device.completion = completion;
    setup.config.caching = false;
    Make(setup);
  }
  std::int64_t Mallocs() const { return device->Counters().Calls(SimOp::kMalloc); }
  std::int64_t Frees() const { return device->Counters().Calls(SimOp::kFree); }
  void ExpectRecountAgrees(const std::vector<RecountedAllocation>& live) {
    for (const std::string& difference : RecountDifferences(*allocator, *device, live)) {
      ADD_FAILURE() << difference;
    }
  }
};

TEST_F(PassThroughTest, EveryAllocationIsADeviceAllocationAndEveryFreeADeviceFree) {
  // Sizes that caching would pack into one 2 MiB or 20 MiB segment, or serve from the cache.
  const std::size_t sizes[] = {1000, 1000, 3 * kMiB, 3 * kMiB, 40 * kMiB};
  std::vector<void*> live;
  std::vector<RecountedAllocation> recount;
  std::int64_t expected_bytes = 0;
  for (std::size_t size : sizes) {
    live.push_back(Alloc(size));
    recount.push_back({live.back(), size});
    expected_bytes += static_cast<std::int64_t>(*allocator->AllocationSize(live.back()));
  }
  EXPECT_EQ(Mallocs(), 5);
  DeviceStats stats = allocator->GetStats();
  EXPECT_EQ(stats.segment.all().current, 5);
  EXPECT_EQ(stats.reserved_bytes.all().current, expected_bytes);  // nothing beside the blocks
  EXPECT_EQ(stats.reserved_bytes.all().current, stats.allocated_bytes.all().current);
  EXPECT_EQ(stats.inactive_split_bytes.all().current, 0);
  ExpectRecountAgrees(recount);

  ASSERT_TRUE(allocator->Free(live[0]).ok());
  EXPECT_EQ(Frees(), 1) << "the free went back to the device at once";
  // The same size again is a new device allocation, not the freed block.
  void* again = Alloc(1000);
  EXPECT_EQ(Mallocs(), 6);
  for (std::size_t i = 1; i < live.size(); ++i) ASSERT_TRUE(allocator->Free(live[i]).ok());
  ASSERT_TRUE(allocator->Free(again).ok());
  EXPECT_EQ(Frees(), 6);
  stats = allocator->GetStats();
  EXPECT_EQ(stats.reserved_bytes.all().current, 0);
  EXPECT_EQ(stats.segment.all().current, 0);
  EXPECT_EQ(stats.num_device_alloc, 6);
  EXPECT_EQ(stats.num_device_free, 6);
  ExpectRecountAgrees({});
}

class PassThroughManualTest : public PassThroughTest {
 protected:
  PassThroughManualTest() : PassThroughTest(SimCompletion::kManual) {}
};

// A block another stream used goes back only once that stream's work is done: cudaFree would
// wait for the device, but vramcache's free must not block, so it waits for the event.
TEST_F(PassThroughManualTest, AFreeWaitsForTheStreamsThatUsedTheBlock) {
  constexpr StreamHandle kSide = 7;
  void* p = Alloc(3 * kMiB);
  ASSERT_TRUE(allocator->RecordStream(p, kSide).ok());
  absl::StatusOr<std::uint64_t> work = device->LaunchWork(
      kSide, {SimAccess{reinterpret_cast<DevicePtr>(p), 3 * kMiB, 1}}, "side stream kernel");
  ASSERT_TRUE(work.ok()) << work.status();
  ASSERT_TRUE(allocator->Free(p).ok());
  EXPECT_EQ(Frees(), 0) << "freed under the side stream's kernel";
  EXPECT_EQ(allocator->GetStats().active_bytes.all().current, static_cast<std::int64_t>(3 * kMiB));
  device->CompleteStream(kSide);
  void* next = Alloc(1000);  // the allocator sees the event complete and gives the block back
  EXPECT_EQ(Frees(), 1);
  ExpectRecountAgrees({{next, 1000}});
  ASSERT_TRUE(allocator->Free(next).ok());
  EXPECT_EQ(allocator->GetStats().reserved_bytes.all().current, 0);
}

}  // namespace
}  // namespace vramcache
