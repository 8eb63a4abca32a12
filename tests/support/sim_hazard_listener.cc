// Linked into every gtest binary: a simulated-device hazard fails the running test (instead of
// aborting the process, the default), naming the hazard. Tests that provoke hazards on purpose
// collect them with ScopedSimHazardCapture, which takes precedence while it lives.
#include "allocator/device/sim_hazards.h"
#include "gtest/gtest.h"

namespace vramcache {
namespace {

class SimHazardEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    SetSimHazardSink([](const SimHazard& hazard) {
      // Thread-safe in gtest; a hazard on a worker thread fails the test that runs it.
      ADD_FAILURE() << "simulated device hazard: " << hazard.message;
    });
  }
  void TearDown() override { SetSimHazardSink(nullptr); }
};

// Registered before main (gtest_main) runs the tests; gtest owns the environment.
[[maybe_unused]] ::testing::Environment* const kEnvironment =
    ::testing::AddGlobalTestEnvironment(new SimHazardEnvironment());

}  // namespace
}  // namespace vramcache
