// A request that fails leaves the device as it found it: reserved bytes, chunks and address
// ranges are what they were before the request (apart from what the out-of-memory ladder
// released), in both modes, and a request that cannot fit by arithmetic creates nothing.
#include <cstdint>
#include <memory>
#include <tuple>

#include "allocator/core/caching_allocator.h"
#include "allocator/device/sim_device.h"
#include "gtest/gtest.h"
#include "tests/support/allocator_fixture.h"

namespace vramcache {
namespace {

struct Scene : AllocatorFixture {
  Scene(VmmMode mode, std::size_t capacity, std::size_t budget = 0) {
    AllocatorSetup setup;
    setup.device.capacity = capacity;
    setup.config.vmm = mode;
    if (budget > 0) setup.config.budget_bytes = budget;
    Make(setup);
  }
  // What a failure must not change.
  struct Held {
    std::size_t device_bytes;
    std::size_t reservations;
    std::int64_t reserved_stat;
    std::int64_t address_space;
    std::int64_t creations;
    bool operator==(const Held&) const = default;
  };
  Held Now() const {
    DeviceStats s = allocator->GetStats();
    return Held{device->HeldBytes(), device->LiveReservations(), s.reserved_bytes.all().current,
                s.address_space_reserved_bytes, device->Calls(SimOp::kCreateChunk)};
  }
};

void PrintTo(const Scene::Held& h, std::ostream* os) {
  *os << "{device " << h.device_bytes << " B, " << h.reservations << " ranges, reserved_bytes "
      << h.reserved_stat << ", address space " << h.address_space << ", " << h.creations
      << " chunks created}";
}

class FailedRequestTest : public ::testing::TestWithParam<VmmMode> {};

// The reviewer's case: 1 GiB device, 100 MiB live, one 2 GiB request. Before the fix, virtual-
// memory mode kept 1024 MiB reserved and had created 462-512 chunks.
TEST_P(FailedRequestTest, ARequestLargerThanTheDeviceKeepsNothing) {
  Scene scene(GetParam(), kGiB);
  absl::StatusOr<void*> live = scene.allocator->Allocate(100 * kMiB, 0);
  ASSERT_TRUE(live.ok()) << live.status();
  const Scene::Held before = scene.Now();
  absl::StatusOr<void*> huge = scene.allocator->Allocate(2 * kGiB, 0);
  ASSERT_FALSE(huge.ok());
  EXPECT_TRUE(absl::IsResourceExhausted(huge.status())) << huge.status();
  EXPECT_EQ(scene.Now(), before);
  ASSERT_TRUE(scene.allocator->Free(*live).ok());
}

TEST_P(FailedRequestTest, ARequestOverTheBudgetKeepsNothing) {
  Scene scene(GetParam(), kGiB, /*budget=*/256 * kMiB);
  absl::StatusOr<void*> live = scene.allocator->Allocate(100 * kMiB, 0);
  ASSERT_TRUE(live.ok()) << live.status();
  const Scene::Held before = scene.Now();
  absl::StatusOr<void*> over = scene.allocator->Allocate(600 * kMiB, 0);
  ASSERT_FALSE(over.ok());
  EXPECT_EQ(scene.Now(), before);
  ASSERT_TRUE(scene.allocator->Free(*live).ok());
}

// Seven failed 16 TiB requests left 112 TiB of address space reserved.
TEST_P(FailedRequestTest, HugeFailedRequestsGiveTheirAddressRangeBack) {
  Scene scene(GetParam(), kGiB);
  const Scene::Held before = scene.Now();
  for (int i = 0; i < 7; ++i) {
    absl::StatusOr<void*> huge = scene.allocator->Allocate(std::size_t{16} << 40, 0);
    ASSERT_FALSE(huge.ok());
  }
  EXPECT_EQ(scene.Now(), before);
  // And the allocator still serves ordinary requests.
  absl::StatusOr<void*> ordinary = scene.allocator->Allocate(8 * kMiB, 0);
  ASSERT_TRUE(ordinary.ok()) << ordinary.status();
  ASSERT_TRUE(scene.allocator->Free(*ordinary).ok());
}

// A request that fits only after the ladder releases cached memory still succeeds, and one
// that fails after the ladder leaves no more than the ladder left.
TEST_P(FailedRequestTest, TheLadderStillReleasesCacheForARequestThatFits) {
  Scene scene(GetParam(), 256 * kMiB);
  absl::StatusOr<void*> a = scene.allocator->Allocate(120 * kMiB, 0);
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(scene.allocator->Free(*a).ok());                         // cached
  absl::StatusOr<void*> b = scene.allocator->Allocate(200 * kMiB, 7);  // another stream
  ASSERT_TRUE(b.ok()) << b.status();
  ASSERT_TRUE(scene.allocator->Free(*b).ok());
}

INSTANTIATE_TEST_SUITE_P(BothModes, FailedRequestTest,
                         ::testing::Values(VmmMode::kOn, VmmMode::kOff),
                         [](const ::testing::TestParamInfo<VmmMode>& info) {
                           return info.param == VmmMode::kOn ? std::string("vmm")
                                                             : std::string("segments");
                         });

}  // namespace
}  // namespace vramcache
