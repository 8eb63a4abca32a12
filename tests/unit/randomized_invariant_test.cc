// Randomized sequences of allocate / free / record_stream / empty-cache on the simulated device
// with real backing memory. After every step CheckInvariants() must hold, live allocations must
// not overlap (checked against an oracle interval map), a pattern written into every live
// allocation must be intact when it is freed, and every statistic must equal its recount from
// outside the allocator (tests/support/stats_recount.h), in both modes.
#include <cstring>
#include <map>
#include <random>
#include <vector>

#include "allocator/core/caching_allocator.h"
#include "allocator/device/sim_device.h"
#include "gtest/gtest.h"
#include "tests/support/stats_recount.h"

namespace vramcache {
namespace {

struct Live {
  void* ptr;
  std::size_t size;
  std::uint32_t tag;
};

std::size_t RandomSize(std::mt19937_64& rng) {
  // Log-uniform from 1 byte to 64 MiB, like tensor sizes.
  std::uniform_real_distribution<double> exponent(0.0, 26.0);
  return static_cast<std::size_t>(std::exp2(exponent(rng))) + (rng() % 7);
}

// Writes the tag at the start, middle and end of the allocation (enough to catch overlap and
// mapping errors without touching every page).
void WriteTag(SimDevice& device, const Live& live) {
  for (std::size_t offset : {std::size_t{0}, live.size / 2, live.size - 1}) {
    const auto byte = static_cast<unsigned char>(live.tag + offset);
    ASSERT_TRUE(device.CopyFromHost(reinterpret_cast<DevicePtr>(live.ptr) + offset, &byte, 1).ok());
  }
}

void CheckTag(SimDevice& device, const Live& live) {
  for (std::size_t offset : {std::size_t{0}, live.size / 2, live.size - 1}) {
    unsigned char byte = 0;
    ASSERT_TRUE(device.CopyToHost(reinterpret_cast<DevicePtr>(live.ptr) + offset, &byte, 1).ok());
    ASSERT_EQ(byte, static_cast<unsigned char>(live.tag + offset))
        << "allocation " << live.ptr << " of " << live.size << " bytes corrupted at " << offset;
  }
}

void RunSeed(std::uint64_t seed, int steps) {
  std::mt19937_64 rng(seed);
  SimDeviceOptions options;
  options.capacity = std::size_t{1} << 30;  // small enough that OOM paths are exercised
  options.accounting_only = false;
  SimDevice device(options);
  AllocatorConfig config;
  config.check_invariants = false;  // checked explicitly below, with a better message
  if (rng() % 4 == 0) config.max_split_size = 32u << 20;
  // Reuse cache off, tiny (mixes cached and coalesced frees), the segment-mode default, or
  // unset (the mode's default).
  const std::size_t reuse_choices[] = {0, 64u << 10, kDefaultReuseCacheBytes};
  if (const std::size_t choice = rng() % 4; choice < 3) {
    config.reuse_cache_bytes = reuse_choices[choice];
  }
  // Both modes; and one run in eight with the debug modes that rewrite memory (no false
  // positive may come from splitting, coalescing, caching, borrowing, stitching or emptying).
  config.vmm = rng() % 2 == 0 ? VmmMode::kOn : VmmMode::kOff;
  const bool debug = rng() % 8 == 0;
  config.canaries = debug;
  config.poison_on_free = debug;
  config.zero_on_alloc = debug && rng() % 2 == 0;
  TickClock clock;
  CachingAllocator allocator(&device, config, &clock);

  std::vector<Live> live;
  std::map<std::uintptr_t, std::size_t> intervals;  // oracle: start -> size of live blocks
  std::int64_t requested = 0;
  std::int64_t out_of_memory_failures = 0;
  const StreamHandle streams[] = {0, 1, 2};
  for (int step = 0; step < steps; ++step) {
    const int op = static_cast<int>(rng() % 100);
    if (op < 55 || live.empty()) {
      const std::size_t size = RandomSize(rng);
      const StreamHandle stream = streams[rng() % 3];
      absl::StatusOr<void*> p = allocator.Allocate(size, stream);
      if (!p.ok()) {
        ASSERT_TRUE(absl::IsResourceExhausted(p.status())) << p.status();
        ++out_of_memory_failures;
        continue;
      }
      const auto start = reinterpret_cast<std::uintptr_t>(*p);
      absl::StatusOr<std::size_t> block_size = allocator.AllocationSize(*p);
      ASSERT_TRUE(block_size.ok());
      ASSERT_GE(*block_size, size);
      // With canaries the block also holds the bands around the user's bytes.
      if (config.canaries) block_size = size;
      auto next = intervals.lower_bound(start);
      if (next != intervals.end()) {
        ASSERT_LE(start + *block_size, next->first) << "overlap";
      }
      if (next != intervals.begin()) {
        auto prev = std::prev(next);
        ASSERT_LE(prev->first + prev->second, start) << "overlap";
      }
      intervals[start] = *block_size;
      Live entry{*p, size, static_cast<std::uint32_t>(rng())};
      WriteTag(device, entry);
      live.push_back(entry);
      requested += static_cast<std::int64_t>(size);
    } else if (op < 92) {
      const std::size_t index = rng() % live.size();
      const Live entry = live[index];
      CheckTag(device, entry);
      if (rng() % 8 == 0) {
        ASSERT_TRUE(allocator.RecordStream(entry.ptr, streams[rng() % 3]).ok());
      }
      ASSERT_TRUE(allocator.Free(entry.ptr).ok());
      intervals.erase(reinterpret_cast<std::uintptr_t>(entry.ptr));
      live[index] = live.back();
      live.pop_back();
      requested -= static_cast<std::int64_t>(entry.size);
    } else if (op < 96) {
      ASSERT_TRUE(allocator.EmptyCache().ok());
    } else {
      // Bad input in the middle of a run changes nothing.
      int not_ours = 0;
      ASSERT_FALSE(allocator.Free(&not_ours).ok());
    }
    absl::Status invariants = allocator.CheckInvariants();
    ASSERT_TRUE(invariants.ok()) << "seed " << seed << " step " << step << ": " << invariants;
    ASSERT_EQ(allocator.GetStats().requested_bytes.all().current, requested)
        << "seed " << seed << " step " << step;
    std::vector<RecountedAllocation> recounted;
    for (const Live& entry : live) recounted.push_back({entry.ptr, entry.size});
    const std::vector<std::string> differences =
        RecountDifferences(allocator, device, recounted,
                           RecountScope{.no_graphs = true,
                                        .device_is_ours = !debug,
                                        .out_of_memory_failures = out_of_memory_failures});
    ASSERT_TRUE(differences.empty())
        << "seed " << seed << " step " << step << " ("
        << (config.vmm == VmmMode::kOn ? "vmm" : "segments") << "): " << differences.front();
  }
  ASSERT_TRUE(allocator.CheckCanaries().ok()) << allocator.CheckCanaries();
  for (const Live& entry : live) {
    CheckTag(device, entry);
    ASSERT_TRUE(allocator.Free(entry.ptr).ok());
  }
  ASSERT_TRUE(allocator.EmptyCache().ok());
  EXPECT_EQ(allocator.GetStats().reserved_bytes.all().current, 0);
  EXPECT_EQ(device.HeldBytes(), 0u);
}

TEST(RandomizedInvariantTest, ManySeeds) {
  const int seeds = VRAMCACHE_RANDOM_SEEDS;
  for (int seed = 1; seed <= seeds; ++seed) {
    ASSERT_NO_FATAL_FAILURE(RunSeed(static_cast<std::uint64_t>(seed), 150)) << "seed " << seed;
  }
}

TEST(RandomizedInvariantTest, FewLongRuns) {
  for (int seed = 1; seed <= 3; ++seed) {
    ASSERT_NO_FATAL_FAILURE(RunSeed(1000003ull * seed, 1500)) << "seed " << seed;
  }
}

}  // namespace
}  // namespace vramcache
