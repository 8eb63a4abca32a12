// Eight threads, each on its own stream, allocate and free, and free blocks that other threads
// allocated. Run under the tsan preset to prove the locking; here it checks invariants and that
// the statistics are exact once every thread has stopped.
#include <atomic>
#include <deque>
#include <random>
#include <thread>
#include <vector>

#include "allocator/base/mutex.h"
#include "allocator/core/caching_allocator.h"
#include "gtest/gtest.h"
#include "tests/support/allocator_fixture.h"

namespace vramcache {
namespace {

TEST(MultithreadStressTest, EightThreadsFreeEachOthersBlocks) {
  AllocatorSetup setup;
  setup.device.capacity = std::size_t{4} << 30;
  setup.device.accounting_only = true;
  setup.check_invariants = false;
  AllocatorFixture f(setup);  // its teardown: Shutdown, and nothing left on the device
  CachingAllocator& allocator = *f.allocator;

  constexpr int kThreads = 8;
  const int iterations = VRAMCACHE_RANDOM_SEEDS * 2;
  Mutex handoff_mu;
  std::deque<void*> handoff;  // blocks allocated by one thread, freed by another
  std::atomic<int> failures{0};
  std::atomic<std::int64_t> total_allocations{0};

  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(static_cast<std::uint64_t>(t) + 1);
      const auto stream = static_cast<StreamHandle>(t + 1);
      std::vector<void*> mine;
      for (int i = 0; i < iterations; ++i) {
        if (rng() % 2 == 0 || mine.empty()) {
          const std::size_t size = 1 + rng() % (rng() % 8 == 0 ? (8u << 20) : 65536);
          absl::StatusOr<void*> p = allocator.Allocate(size, stream);
          if (!p.ok()) {
            failures.fetch_add(1);
            continue;
          }
          total_allocations.fetch_add(1);
          mine.push_back(*p);
        } else if (rng() % 3 == 0) {
          MutexLock lock(&handoff_mu);
          handoff.push_back(mine.back());
          mine.pop_back();
        } else {
          void* victim = nullptr;
          {
            MutexLock lock(&handoff_mu);
            if (!handoff.empty()) {
              victim = handoff.front();
              handoff.pop_front();
            }
          }
          if (victim == nullptr) {
            victim = mine.back();
            mine.pop_back();
          }
          if (!allocator.Free(victim).ok()) failures.fetch_add(1);
        }
      }
      for (void* p : mine) {
        if (!allocator.Free(p).ok()) failures.fetch_add(1);
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (void* p : handoff) ASSERT_TRUE(allocator.Free(p).ok());

  EXPECT_EQ(failures.load(), 0);
  ASSERT_TRUE(allocator.CheckInvariants().ok());
  const DeviceStats s = allocator.GetStats();
  EXPECT_EQ(s.allocation.all().current, 0);
  EXPECT_EQ(s.allocated_bytes.all().current, 0);
  EXPECT_EQ(s.allocation.all().allocated, total_allocations.load());
  EXPECT_EQ(s.allocation.all().freed(), total_allocations.load());
}

}  // namespace
}  // namespace vramcache
