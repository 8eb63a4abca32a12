// The allocator suites' shared fixture (tests/support/allocator_fixture.h): the setup reaches
// the device and the allocator (a VRAMCACHE_CONF string on top of the config, a decorator in
// between), and the teardown reports what leaked.
#include "tests/support/allocator_fixture.h"

#include <memory>

#include "allocator/core/config.h"
#include "gtest/gtest-spi.h"
#include "gtest/gtest.h"
#include "tests/support/forwarding_device.h"

namespace vramcache {
namespace {

TEST(AllocatorFixtureTest, TheConfStringAppliesOnTopOfTheConfig) {
  AllocatorSetup setup;
  setup.device.capacity = kGiB;
  setup.config.vmm = VmmMode::kOff;
  setup.config.record_history = true;
  setup.conf = "vmm:on,budget:64MiB";
  AllocatorFixture f(setup);
  EXPECT_EQ(f.allocator->config().vmm, VmmMode::kOn);
  EXPECT_TRUE(f.allocator->config().record_history) << "the config's other settings stay";
  EXPECT_TRUE(f.allocator->config().check_invariants);
  EXPECT_EQ(f.allocator->Budget(), 64 * kMiB);
  void* p = f.Alloc(3 * kMiB);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(f.device->Calls(SimOp::kMalloc), 0) << "virtual-memory mode maps chunks";
  EXPECT_GT(f.device->Calls(SimOp::kCreateChunk), 0);
  ASSERT_TRUE(f.allocator->Free(p).ok());
}

TEST(AllocatorFixtureTest, TheAllocatorSeesTheDeviceThroughTheDecorator) {
  class CountingDevice final : public ForwardingDevice {
   public:
    CountingDevice(Device* inner, int* mallocs) : ForwardingDevice(inner), mallocs_(mallocs) {}
    absl::StatusOr<DevicePtr> Malloc(std::size_t bytes) override {
      ++*mallocs_;
      return ForwardingDevice::Malloc(bytes);
    }

   private:
    int* mallocs_;
  };
  int mallocs = 0;
  AllocatorSetup setup = SegmentModeSetup(kGiB);
  setup.decorate = [&mallocs](SimDevice* sim) -> std::unique_ptr<Device> {
    return std::make_unique<CountingDevice>(sim, &mallocs);
  };
  AllocatorFixture f(setup);
  EXPECT_EQ(f.allocator->device(), f.decorator.get());
  void* p = f.Alloc(1000);
  EXPECT_EQ(mallocs, 1);
  EXPECT_EQ(f.device->Calls(SimOp::kMalloc), 1);
  ASSERT_TRUE(f.allocator->Free(p).ok());
}

// Memory the allocator does not know of outlives its Shutdown: the teardown names it.
TEST(AllocatorFixtureTest, TheTeardownReportsMemoryLeftOnTheDevice) {
  AllocatorFixture f(SegmentModeSetup(kGiB));
  absl::StatusOr<DevicePtr> stray = f.device->Malloc(2 * kMiB);
  ASSERT_TRUE(stray.ok()) << stray.status();
  ::testing::TestPartResultArray failures;
  bool clean = true;
  {
    ::testing::ScopedFakeTestPartResultReporter reporter(
        ::testing::ScopedFakeTestPartResultReporter::INTERCEPT_ONLY_CURRENT_THREAD, &failures);
    clean = f.Teardown();
  }
  EXPECT_FALSE(clean);
  ASSERT_EQ(failures.size(), 1);
  EXPECT_NE(std::string(failures.GetTestPartResult(0).message()).find("memory leaked"),
            std::string::npos)
      << failures.GetTestPartResult(0).message();
  EXPECT_TRUE(f.Teardown()) << "a second teardown does nothing";
  ASSERT_TRUE(f.device->Free(*stray).ok());
}

}  // namespace
}  // namespace vramcache
