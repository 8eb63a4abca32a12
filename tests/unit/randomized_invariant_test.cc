// Randomized sequences of allocate / free / record_stream / empty-cache on the simulated device
// with real backing memory, over many seeds (VRAMCACHE_RANDOM_SEEDS) and a few long runs. After
// every step CheckInvariants() must hold, live allocations must not overlap, and a pattern
// written into every live allocation must be intact when it is freed, and every statistic must
// equal its recount from outside the allocator (tests/support/stats_recount.h), in both modes:
// RunRandomizedSeed.
#include <cstdint>

#include "gtest/gtest.h"
#include "tests/support/randomized_workload.h"

namespace vramcache {
namespace {

TEST(RandomizedInvariantTest, ManySeeds) {
  const int seeds = VRAMCACHE_RANDOM_SEEDS;
  for (int seed = 1; seed <= seeds; ++seed) {
    ASSERT_NO_FATAL_FAILURE(RunRandomizedSeed(static_cast<std::uint64_t>(seed), 150))
        << "seed " << seed;
  }
}

TEST(RandomizedInvariantTest, FewLongRuns) {
  for (int seed = 1; seed <= 3; ++seed) {
    ASSERT_NO_FATAL_FAILURE(RunRandomizedSeed(1000003ull * seed, 1500)) << "seed " << seed;
  }
}

}  // namespace
}  // namespace vramcache
