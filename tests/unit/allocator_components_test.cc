// The components' construction against its interface: the backing the configuration and the
// device call for (segments, virtual memory, never virtual memory without caching), exactly one
// typed backing pointer set, the reuse cache's size, the debug steps only with a debug mode,
// the runtime settings taken from the configuration, and the wiring: the queries read the
// pointer map the block lifecycle writes, and a pending free completes through the lifecycle.
#include "allocator/core/allocator_components.h"

#include "allocator/core/clock.h"
#include "allocator/core/config.h"
#include "allocator/core/debug_guard.h"
#include "allocator/device/sim_device.h"
#include "gtest/gtest.h"
#include "tests/support/segment_mode_parts.h"

namespace vramcache {
namespace {

constexpr StreamHandle kHome = 7;
constexpr StreamHandle kOther = 8;

// A device, a clock and a guard for `config`, for the components to be built over.
struct Built {
  explicit Built(const AllocatorConfig& config_in, const SimDeviceOptions& options = {})
      : device(options), config(config_in), guard(&device, config) {}
  SimDevice device;
  AllocatorConfig config;
  TickClock clock;
  DebugGuard guard;
};

TEST(AllocatorComponentsTest, SegmentModeBacksSegmentsWithDeviceAllocations) {
  AllocatorConfig config;
  config.vmm = VmmMode::kOff;
  Built built(config);
  AllocatorComponents c(&built.device, built.config, &built.clock, &built.guard);
  EXPECT_FALSE(c.virtual_memory);
  EXPECT_EQ(c.vmm, nullptr);
  EXPECT_EQ(c.segments, c.backing.get());
  EXPECT_FALSE(c.single_use_ranges);
  EXPECT_TRUE(c.reuse_cache.HasRoomFor(kDefaultReuseCacheBytes));
  EXPECT_FALSE(c.reuse_cache.HasRoomFor(kDefaultReuseCacheBytes + 1));
}

TEST(AllocatorComponentsTest, VirtualMemoryWhereTheDeviceHasItWithItsOwnReuseCacheSize) {
  AllocatorConfig config;
  config.unmap_on_free = true;
  Built built(config);
  AllocatorComponents c(&built.device, built.config, &built.clock, &built.guard);
  EXPECT_TRUE(c.virtual_memory);
  EXPECT_EQ(c.vmm, c.backing.get());
  EXPECT_EQ(c.segments, nullptr);
  EXPECT_TRUE(c.single_use_ranges);
  EXPECT_TRUE(c.reuse_cache.HasRoomFor(kDefaultVmmReuseCacheBytes));
  EXPECT_FALSE(c.reuse_cache.HasRoomFor(kDefaultVmmReuseCacheBytes + 1));
}

TEST(AllocatorComponentsTest, NoVirtualMemoryOnADeviceWithoutItOrWithoutCaching) {
  SimDeviceOptions no_vmm;
  no_vmm.vmm_supported = false;
  Built without_vmm(AllocatorConfig{}, no_vmm);
  AllocatorComponents a(&without_vmm.device, without_vmm.config, &without_vmm.clock,
                        &without_vmm.guard);
  EXPECT_FALSE(a.virtual_memory);
  EXPECT_NE(a.segments, nullptr);

  AllocatorConfig pass_through;
  pass_through.caching = false;
  pass_through.unmap_on_free = true;
  Built uncached(pass_through);
  AllocatorComponents b(&uncached.device, uncached.config, &uncached.clock, &uncached.guard);
  EXPECT_FALSE(b.virtual_memory);
  EXPECT_FALSE(b.single_use_ranges);
  EXPECT_FALSE(b.reuse_cache.HasRoomFor(1));  // nothing is ever cached
}

TEST(AllocatorComponentsTest, DebugStepsExistOnlyWithADebugMode) {
  Built plain(AllocatorConfig{});
  AllocatorComponents a(&plain.device, plain.config, &plain.clock, &plain.guard);
  EXPECT_EQ(a.debug, nullptr);

  AllocatorConfig poison;
  poison.poison_on_free = true;
  Built debugged(poison);
  AllocatorComponents b(&debugged.device, debugged.config, &debugged.clock, &debugged.guard);
  EXPECT_NE(b.debug, nullptr);
  EXPECT_EQ(b.debug, b.debug_hooks.get());
}

TEST(AllocatorComponentsTest, RuntimeSettingsAndStatisticsStartFromTheConfiguration) {
  AllocatorConfig config;
  config.max_split_size = 64 * kMiB;
  config.roundup_power2_divisions = {1, 2, 4};
  Built built(config);
  AllocatorComponents c(&built.device, built.config, &built.clock, &built.guard);
  EXPECT_EQ(c.settings.max_split_size, 64 * kMiB);
  EXPECT_EQ(c.settings.roundup_power2_divisions, config.roundup_power2_divisions);
  EXPECT_EQ(c.queries.Stats().max_split_size, static_cast<std::int64_t>(64 * kMiB));
}

TEST(AllocatorComponentsTest, TheQueriesReadThePointerMapTheLifecycleWrites) {
  SegmentModeParts parts;
  Block* block = parts.AllocateFromNewSegment(kMiB, kHome);
  ASSERT_NE(block, nullptr);
  absl::StatusOr<std::size_t> size = parts.queries.AllocationSize(block->addr);
  ASSERT_TRUE(size.ok()) << size.status();
  EXPECT_EQ(*size, kMiB);
  EXPECT_EQ(parts.queries.Stats().allocated_bytes.all().current, static_cast<std::int64_t>(kMiB));
  EXPECT_TRUE(parts.queries.CheckInvariants().ok());
}

TEST(AllocatorComponentsTest, APendingFreeCompletesThroughTheLifecycle) {
  SimDeviceOptions manual;
  manual.completion = SimCompletion::kManual;
  SegmentModeParts parts(manual);
  Block* block = parts.AllocateFromNewSegment(kMiB, kHome);
  ASSERT_NE(block, nullptr);
  block->stream_uses.push_back(kOther);
  parts.device.SubmitWork(kOther);  // still running at the free
  ASSERT_TRUE(parts.FreeNotCached(block).ok());
  ASSERT_TRUE(parts.frees.has_pending());
  parts.device.CompleteStream(kOther);
  ASSERT_TRUE(parts.lifecycle.ReturnCompletedFrees(0, /*into_reuse_cache=*/false).ok());
  EXPECT_FALSE(parts.frees.has_pending());
  EXPECT_TRUE(parts.heap.segments().begin()->second->IsWhollyFree());  // coalesced back
  EXPECT_TRUE(parts.queries.CheckInvariants().ok());
}

}  // namespace
}  // namespace vramcache
