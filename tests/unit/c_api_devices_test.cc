// Several simulated devices through the C ABI (sim_devices): ordinals 0..N-1, each with its own
// allocator, and peer access granted by the owning device's allocator to the accessing one.
#include <string>

#include "allocator/api/registry.h"
#include "allocator/api/vramcache.h"
#include "allocator/device/sim_device.h"
#include "gtest/gtest.h"

namespace {

using vramcache::AllocatorRef;
using vramcache::Registry;
using vramcache::SimDevice;
using vramcache::SimOp;

class CApiDevicesTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(vramcache_shutdown(), 0); }
  void TearDown() override { EXPECT_EQ(vramcache_shutdown(), 0); }

  // Peer grants the simulated device `device` has made (cuMemSetAccess for a peer).
  static std::int64_t PeerGrants(int device) {
    absl::StatusOr<AllocatorRef> allocator = Registry::Global().Get(device);
    EXPECT_TRUE(allocator.ok()) << allocator.status();
    if (!allocator.ok()) return -1;
    auto* sim = dynamic_cast<SimDevice*>(allocator->device());
    EXPECT_NE(sim, nullptr);
    return sim == nullptr ? -1 : sim->Calls(SimOp::kGrantPeerAccess);
  }
};

TEST_F(CApiDevicesTest, OneSimulatedDeviceByDefault) {
  ASSERT_EQ(vramcache_configure("device:sim,sim_capacity:1GiB"), 0) << vramcache_last_error();
  EXPECT_EQ(vramcache_device_count(), 1);
  EXPECT_EQ(vramcache_try_malloc(4096, 1, nullptr), nullptr);
  EXPECT_NE(std::string(vramcache_last_error()).find("device 1 does not exist"), std::string::npos)
      << vramcache_last_error();
}

TEST_F(CApiDevicesTest, EachSimulatedDeviceHasItsOwnAllocator) {
  ASSERT_EQ(vramcache_configure("device:sim,sim_capacity:1GiB,sim_devices:3"), 0)
      << vramcache_last_error();
  ASSERT_EQ(vramcache_device_count(), 3);
  void* on2 = vramcache_try_malloc(3 << 20, 2, nullptr);
  ASSERT_NE(on2, nullptr) << vramcache_last_error();
  vramcache_stats s{};
  s.struct_size = sizeof(s);
  ASSERT_EQ(vramcache_get_stats(2, &s), 0);
  EXPECT_EQ(s.requested_bytes[0].current, 3 << 20);
  ASSERT_EQ(vramcache_get_stats(0, &s), 0);
  EXPECT_EQ(s.requested_bytes[0].current, 0);
  EXPECT_EQ(vramcache_device_total_bytes(1), std::size_t{1} << 30);
  // A free naming the wrong device is refused and names the right one.
  vramcache_free(on2, 0, 1, nullptr);
  EXPECT_NE(std::string(vramcache_last_error()).find("allocated on device 2"), std::string::npos)
      << vramcache_last_error();
  vramcache_free(on2, 0, 2, nullptr);
  EXPECT_STREQ(vramcache_last_error(), "");
  EXPECT_EQ(vramcache_try_malloc(4096, 3, nullptr), nullptr);
  EXPECT_NE(std::string(vramcache_last_error()).find("serves 3 devices"), std::string::npos)
      << vramcache_last_error();
}

TEST_F(CApiDevicesTest, SimDevicesOutsideItsRangeIsRefused) {
  for (const char* conf : {"sim_devices:0", "sim_devices:17", "sim_devices:-1", "sim_devices:2.5",
                           "sim_devices:two"}) {
    EXPECT_EQ(vramcache_configure(conf), -1) << conf;
    EXPECT_NE(std::string(vramcache_last_error()).find("a whole number from 1 to 16"),
              std::string::npos)
        << vramcache_last_error();
  }
}

// PyTorch's enablePeerAccess(dev, dev_to_access): dev may access dev_to_access's memory, so the
// allocator of dev_to_access (the owner) grants its mappings to dev (the accessing device).
TEST_F(CApiDevicesTest, PeerAccessIsGrantedByTheOwningDevice) {
  ASSERT_EQ(vramcache_configure("device:sim,sim_capacity:1GiB,sim_devices:2,vmm:on"), 0)
      << vramcache_last_error();
  void* on1 = vramcache_try_malloc(5 << 20, 1, nullptr);  // three 2 MiB pages on device 1
  ASSERT_NE(on1, nullptr) << vramcache_last_error();
  void* on0 = vramcache_try_malloc(1 << 20, 0, nullptr);
  ASSERT_NE(on0, nullptr) << vramcache_last_error();
  ASSERT_EQ(vramcache_enable_peer_access(/*accessing_device=*/0, /*owning_device=*/1), 0)
      << vramcache_last_error();
  EXPECT_EQ(PeerGrants(1), 3) << "device 1's pages were not made accessible to device 0";
  EXPECT_EQ(PeerGrants(0), 0) << "device 0 granted its memory, which nobody asked for";
  vramcache_free(on1, 0, 1, nullptr);
  vramcache_free(on0, 0, 0, nullptr);
}

TEST_F(CApiDevicesTest, PeerAccessNeedsTwoExistingDevices) {
  ASSERT_EQ(vramcache_configure("device:sim,sim_capacity:1GiB,sim_devices:2,vmm:on"), 0)
      << vramcache_last_error();
  EXPECT_EQ(vramcache_enable_peer_access(0, 0), -1);
  EXPECT_NE(std::string(vramcache_last_error()).find("two different devices"), std::string::npos)
      << vramcache_last_error();
  EXPECT_EQ(vramcache_enable_peer_access(5, 1), -1);
  EXPECT_NE(std::string(vramcache_last_error()).find("device 5 does not exist"), std::string::npos)
      << vramcache_last_error();
  EXPECT_EQ(vramcache_enable_peer_access(1, 5), -1);
  EXPECT_NE(std::string(vramcache_last_error()).find("device 5 does not exist"), std::string::npos)
      << vramcache_last_error();
  EXPECT_EQ(vramcache_last_error_kind(), VRAMCACHE_ERROR_INVALID);
}

}  // namespace
