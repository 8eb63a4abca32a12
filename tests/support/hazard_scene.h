// What the hazard scenes share (hazard_regression_test, cross_stream_free_test): the hazards a
// scene's device reports, kernels that touch an allocation's bytes, and a user's ordering of
// one stream after another. A scene derives from HazardScene (HazardCapture ahead of its
// allocator fixture, so that the capture outlives the device's last calls).
#pragma once

#include <cstddef>
#include <cstdint>

#include "absl/status/statusor.h"
#include "allocator/device/sim_device.h"
#include "allocator/device/sim_hazards.h"
#include "gtest/gtest.h"
#include "tests/support/allocator_fixture.h"

namespace vramcache {

struct HazardCapture {
  ScopedSimHazardCapture hazards;
};

// A kernel of allocation `owner` on `stream` touching [ptr, ptr + bytes); its ticket (0 when
// the launch failed, which fails the test).
inline std::uint64_t LaunchKernel(SimDevice& device, StreamHandle stream, void* ptr,
                                  std::size_t bytes, std::uint64_t owner) {
  absl::StatusOr<std::uint64_t> ticket =
      device.LaunchWork(stream, {{reinterpret_cast<DevicePtr>(ptr), bytes, owner}}, "kernel");
  EXPECT_TRUE(ticket.ok()) << ticket.status();
  return ticket.ok() ? *ticket : 0;
}

// The user's fork: `to` runs after everything `from` ran so far.
inline void OrderAfter(SimDevice& device, StreamHandle from, StreamHandle to) {
  absl::StatusOr<EventHandle> event = device.CreateEvent();
  ASSERT_TRUE(event.ok());
  ASSERT_TRUE(device.RecordEvent(*event, from).ok());
  ASSERT_TRUE(device.StreamWaitEvent(to, *event).ok());
  ASSERT_TRUE(device.DestroyEvent(*event).ok());
}

// A scene: the allocator over a simulated device whose hazards it collects. Teardown completes
// the device's work, releases the allocator (its leak checks) and requires no hazard.
struct HazardScene : HazardCapture, AllocatorFixture {
  ~HazardScene() {
    device->CompleteAll();
    Teardown();
    EXPECT_EQ(hazards.size(), 0u) << hazards.Summary();
  }
  std::uint64_t Kernel(StreamHandle stream, void* ptr, std::size_t bytes, std::uint64_t owner) {
    return LaunchKernel(*device, stream, ptr, bytes, owner);
  }
  void Order(StreamHandle from, StreamHandle to) { OrderAfter(*device, from, to); }
};

}  // namespace vramcache
