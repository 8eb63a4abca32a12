// AllocatorFixture: builds the simulated device and the allocator, and checks at the end that
// nothing leaked (see allocator_fixture.h).
#include "tests/support/allocator_fixture.h"

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "allocator/api/config_parser.h"

namespace vramcache {

AllocatorSetup SegmentModeSetup(std::size_t capacity, const AllocatorConfig& config,
                                SimCompletion completion) {
  AllocatorSetup setup;
  setup.device.capacity = capacity;
  setup.device.completion = completion;
  setup.config = config;
  if (setup.config.vmm == VmmMode::kAuto) setup.config.vmm = VmmMode::kOff;
  return setup;
}

void AllocatorFixture::Make(const AllocatorSetup& setup) {
  Teardown();
  allocator.reset();
  decorator.reset();
  device.reset();

  AllocatorConfig config = setup.config;
  if (!setup.conf.empty()) {
    absl::StatusOr<AllocatorConfig> parsed =
        ParseConfigOnto(setup.conf, config, "AllocatorSetup::conf");
    if (parsed.ok()) {
      config = *std::move(parsed);
    } else {
      ADD_FAILURE() << parsed.status();
    }
  }
  config.check_invariants = setup.check_invariants;

  device = std::make_unique<SimDevice>(setup.device);
  Device* seen = device.get();
  if (setup.decorate) {
    decorator = setup.decorate(device.get());
    seen = decorator.get();
  }
  allocator = std::make_unique<CachingAllocator>(seen, config, &clock);
  torn_down_ = false;
}

bool AllocatorFixture::Teardown() {
  if (torn_down_) return true;
  torn_down_ = true;
  const absl::Status invariants = allocator->CheckInvariants();
  EXPECT_TRUE(invariants.ok()) << invariants;
  const absl::Status shutdown = allocator->Shutdown();
  EXPECT_TRUE(shutdown.ok()) << shutdown;
  const std::size_t held = device->HeldBytes();
  const std::size_t mappings = device->LiveMappings();
  const std::size_t reservations = device->LiveReservations();
  EXPECT_EQ(held, 0u) << "memory leaked past Shutdown";
  EXPECT_EQ(mappings, 0u) << "mappings left past Shutdown";
  EXPECT_EQ(reservations, 0u) << "address ranges left past Shutdown";
  return invariants.ok() && shutdown.ok() && held == 0 && mappings == 0 && reservations == 0;
}

void* AllocatorFixture::Alloc(std::size_t size, StreamHandle stream) {
  absl::StatusOr<void*> p = allocator->Allocate(size, stream);
  EXPECT_TRUE(p.ok()) << p.status();
  return p.ok() ? *p : nullptr;
}

}  // namespace vramcache
