// The allocator suites' shared fixture: a simulated device, a CachingAllocator on it, and the
// leak-checked teardown, so that each suite states only what differs (its AllocatorSetup)
// instead of writing out the construction and the end-of-test checks again.
//
// The setup says what the test needs: the device's capabilities and behaviour
// (SimDeviceOptions: capacity, granularity, memory or accounting only, completion, whether it
// supports virtual memory), the allocator's settings as an AllocatorConfig (segment or
// virtual-memory mode is `config.vmm`) with an optional VRAMCACHE_CONF string on top, and,
// where a test must intercept calls, a decorator the allocator sees the device through.
//
// Teardown (the destructor, or an explicit call where a test checks more after it) proves that
// nothing leaked: the allocator's invariants hold, Shutdown succeeds, and the device holds no
// bytes, no mappings and no address ranges. It keeps the objects alive, so a test can still ask
// the device afterwards; they go with the fixture (or the next Make).
//
//   AllocatorSetup setup;
//   setup.device.capacity = 1 * kGiB;
//   setup.config.vmm = VmmMode::kOn;
//   AllocatorFixture f(setup);
//   void* p = f.Alloc(3 * kMiB);
//   ASSERT_TRUE(f.allocator->Free(p).ok());
//
// For TEST_F / TEST_P suites, AllocatorTest<Base> is the same fixture as a gtest base class
// (built by Make in SetUp or in the test, torn down in TearDown).
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include "allocator/core/caching_allocator.h"
#include "allocator/core/clock.h"
#include "allocator/core/config.h"
#include "allocator/device/device.h"
#include "allocator/device/sim_device.h"
#include "gtest/gtest.h"

namespace vramcache {

struct AllocatorSetup {
  // The simulated device (SimDeviceOptions' defaults: 80 GiB, accounting only, immediate
  // completion, virtual memory supported).
  SimDeviceOptions device;
  // The allocator's settings; `config.vmm` picks segment or virtual-memory mode.
  AllocatorConfig config;
  // Applied on top of `config` in VRAMCACHE_CONF's syntax ("vmm:on,budget:256MiB"); "" adds
  // nothing. A string that does not parse fails the test.
  std::string conf;
  // Overrides config.check_invariants: CheckInvariants() after every operation. Off only where
  // a test checks at points of its own.
  bool check_invariants = true;
  // When set, the allocator sees the device through what this returns (a ForwardingDevice
  // with hooks, a RecordingDevice); the test keeps driving the SimDevice itself.
  std::function<std::unique_ptr<Device>(SimDevice*)> decorate;
};

// A device of `capacity` bytes (accounting only) and `config`, in segment mode where `config`
// leaves the mode to the device (kAuto): for the suites that pin segment mode's behaviour
// (PyTorch's segment sizes, cudaMalloc/cudaFree); virtual-memory mode has its own suites.
AllocatorSetup SegmentModeSetup(std::size_t capacity, const AllocatorConfig& config = {},
                                SimCompletion completion = SimCompletion::kImmediate);

class AllocatorFixture {
 public:
  // Empty until Make().
  AllocatorFixture() = default;
  explicit AllocatorFixture(const AllocatorSetup& setup) { Make(setup); }
  ~AllocatorFixture() { Teardown(); }
  AllocatorFixture(const AllocatorFixture&) = delete;
  AllocatorFixture& operator=(const AllocatorFixture&) = delete;

  // Builds a fresh device and allocator from `setup`; what was built before is torn down first
  // (with the checks) and destroyed. The clock keeps running across Makes.
  void Make(const AllocatorSetup& setup);
  // The leak-checked teardown (see the file comment): false when a check failed (each failure
  // is reported). Does nothing, and returns true, when nothing was built or it already ran.
  bool Teardown();

  // Allocates `size` bytes on `stream`; a failure fails the test and gives nullptr.
  void* Alloc(std::size_t size, StreamHandle stream = 0);

  TickClock clock;
  std::unique_ptr<SimDevice> device;
  std::unique_ptr<Device> decorator;  // between the allocator and the device, if any
  std::unique_ptr<CachingAllocator> allocator;

 private:
  bool torn_down_ = true;
};

// AllocatorFixture as a gtest fixture: `class MyTest : public AllocatorTest<> {...}`, or
// AllocatorTest<::testing::TestWithParam<VmmMode>> for parameterized suites.
template <typename Base = ::testing::Test>
class AllocatorTest : public Base, public AllocatorFixture {
 protected:
  void TearDown() override { Teardown(); }
};

}  // namespace vramcache
