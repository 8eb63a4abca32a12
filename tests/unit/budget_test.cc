// Budgets and the out-of-memory ladder: the hard cap holds at every instant under concurrency,
// each rung of the ladder is forced on its own and shown (by counters) to be the one that
// succeeded, every verdict comes from a constructed scenario, and nothing leaks after an OOM.
#include <atomic>
#include <random>
#include <thread>
#include <vector>

#include "allocator/core/caching_allocator.h"
#include "allocator/device/sim_device.h"
#include "gtest/gtest.h"
#include "tests/support/allocator_fixture.h"

namespace vramcache {
namespace {

// The shared fixture, in segment mode unless a test asks for virtual memory.
struct Fixture : AllocatorFixture {
  explicit Fixture(std::size_t capacity, AllocatorConfig config = {},
                   SimCompletion completion = SimCompletion::kImmediate)
      : AllocatorFixture(SegmentModeSetup(capacity, config, completion)) {}
};

TEST(BudgetTest, HardCapHoldsAtEveryInstantUnderConcurrency) {
  AllocatorConfig config;
  config.budget_bytes = 256 * kMiB;
  Fixture f(std::size_t{8} << 30, config);
  std::atomic<int> unexpected{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(static_cast<std::uint64_t>(t) + 11);
      std::vector<void*> mine;
      for (int i = 0; i < VRAMCACHE_RANDOM_SEEDS; ++i) {
        if (rng() % 3 != 0 || mine.empty()) {
          const std::size_t size = 1 + rng() % (rng() % 4 == 0 ? 40 * kMiB : 256 * 1024);
          absl::StatusOr<void*> p = f.allocator->Allocate(size, static_cast<StreamHandle>(t));
          if (p.ok()) {
            mine.push_back(*p);
          } else if (!absl::IsResourceExhausted(p.status())) {
            unexpected.fetch_add(1);
          }
        } else {
          const std::size_t index = rng() % mine.size();
          if (!f.allocator->Free(mine[index]).ok()) unexpected.fetch_add(1);
          mine[index] = mine.back();
          mine.pop_back();
        }
      }
      for (void* p : mine) {
        if (!f.allocator->Free(p).ok()) unexpected.fetch_add(1);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(unexpected.load(), 0);
  // The device's own high-water mark: what was held at any instant.
  EXPECT_LE(f.device->Counters().peak_held_bytes, 256 * kMiB);
  EXPECT_LE(f.allocator->GetStats().reserved_bytes.all().peak, 256 * 1024 * 1024);
}

TEST(BudgetTest, RungCachedBlock) {
  Fixture f(64 * kMiB);
  void* a = f.Alloc(8 * kMiB);
  ASSERT_TRUE(f.allocator->Free(a).ok());
  void* b = f.Alloc(8 * kMiB);
  const DeviceStats s = f.allocator->GetStats();
  EXPECT_EQ(s.num_cache_hits, 1);
  EXPECT_EQ(s.num_device_alloc, 1);
  EXPECT_EQ(s.num_alloc_retries, 0);
  ASSERT_TRUE(f.allocator->Free(b).ok());
}

TEST(BudgetTest, RungGrowWithinBudget) {
  AllocatorConfig config;
  config.budget_bytes = 48 * kMiB;
  Fixture f(std::size_t{1} << 30, config);
  void* a = f.Alloc(30 * kMiB);
  void* b = f.Alloc(16 * kMiB);  // 30 + 16 <= 48: growth, no retry
  const DeviceStats s = f.allocator->GetStats();
  EXPECT_EQ(s.num_device_alloc, 2);
  EXPECT_EQ(s.num_alloc_retries, 0);
  EXPECT_EQ(s.num_ooms, 0);
  ASSERT_TRUE(f.allocator->Free(a).ok());
  ASSERT_TRUE(f.allocator->Free(b).ok());
}

TEST(BudgetTest, RungReleaseCachedMemory) {
  AllocatorConfig config;
  config.budget_bytes = 48 * kMiB;
  Fixture f(std::size_t{1} << 30, config);
  void* a = f.Alloc(30 * kMiB);
  ASSERT_TRUE(f.allocator->Free(a).ok());
  void* b = f.Alloc(40 * kMiB);  // 30 cached + 40 > 48: release the cache, then grow
  const DeviceStats s = f.allocator->GetStats();
  EXPECT_EQ(s.num_cache_releases, 1);
  EXPECT_EQ(s.num_alloc_retries, 1);
  EXPECT_EQ(s.num_ooms, 0);
  EXPECT_EQ(s.reserved_bytes.all().current, 40 * 1024 * 1024);
  ASSERT_TRUE(f.allocator->Free(b).ok());
}

TEST(BudgetTest, RungWaitForPendingCrossStreamFrees) {
  Fixture f(40 * kMiB, {}, SimCompletion::kManual);
  void* a = f.Alloc(30 * kMiB, /*stream=*/1);
  ASSERT_TRUE(f.allocator->RecordStream(a, /*stream=*/2).ok());
  f.device->SubmitWork(2);  // a kernel on stream 2 still reads `a`
  ASSERT_TRUE(f.allocator->Free(a).ok());
  // Only by waiting for stream 2 can 30 MiB be found on a 40 MiB card.
  void* b = f.Alloc(30 * kMiB, /*stream=*/1);
  const DeviceStats s = f.allocator->GetStats();
  EXPECT_EQ(s.num_sync_all_streams, 1);
  EXPECT_GE(s.num_alloc_retries, 1);
  EXPECT_EQ(s.num_ooms, 0);
  EXPECT_EQ(b, a);
  ASSERT_TRUE(f.allocator->Free(b).ok());
}

TEST(BudgetTest, RungFailCallsObserversAndRecovers) {
  AllocatorConfig config;
  config.budget_bytes = 32 * kMiB;
  Fixture f(std::size_t{1} << 30, config);
  int calls = 0;
  std::size_t seen_requested = 0, seen_limit = 0, seen_allocated = 0;
  f.allocator->AttachOomObserver([&](int device, std::size_t requested, std::size_t allocated,
                                     std::size_t limit, std::size_t) {
    ++calls;
    EXPECT_EQ(device, 0);
    seen_requested = requested;
    seen_allocated = allocated;
    seen_limit = limit;
    // Observers may read statistics: the lock is not held.
    EXPECT_EQ(f.allocator->GetStats().num_ooms, 1);
  });
  void* a = f.Alloc(24 * kMiB);
  absl::StatusOr<void*> b = f.allocator->Allocate(16 * kMiB, 0);
  ASSERT_TRUE(absl::IsResourceExhausted(b.status()));
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(seen_requested, 16 * kMiB);
  EXPECT_EQ(seen_allocated, 24 * kMiB);
  EXPECT_EQ(seen_limit, 32 * kMiB);
  ASSERT_TRUE(f.allocator->Free(a).ok());
  void* c = f.Alloc(16 * kMiB);  // the same request succeeds once memory is freed
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(f.allocator->Free(c).ok());
}

OomVerdict VerdictOf(Fixture& f, std::size_t size, std::string* message) {
  absl::StatusOr<void*> p = f.allocator->Allocate(size, 0);
  EXPECT_TRUE(absl::IsResourceExhausted(p.status())) << p.status();
  *message = std::string(p.status().message());
  EXPECT_TRUE(f.allocator->LastOom().has_value());
  return f.allocator->LastOom().value_or(OomReport{}).verdict;
}

TEST(BudgetTest, VerdictBudgetReached) {
  AllocatorConfig config;
  config.budget_bytes = 64 * kMiB;
  Fixture f(std::size_t{1} << 30, config);
  void* a = f.Alloc(60 * kMiB);
  std::string message;
  EXPECT_EQ(VerdictOf(f, 20 * kMiB, &message), OomVerdict::kBudgetReached);
  EXPECT_NE(message.find("Budget: 64.00 MiB"), std::string::npos) << message;
  EXPECT_NE(message.find("budget of 64.00 MiB is reached"), std::string::npos) << message;
  ASSERT_TRUE(f.allocator->Free(a).ok());
}

TEST(BudgetTest, VerdictFragmentation) {
  Fixture f(20 * kMiB);
  void* a = f.Alloc(6 * kMiB);  // one 20 MiB segment: [a 6][b 6][free 8]
  void* b = f.Alloc(6 * kMiB);
  ASSERT_TRUE(f.allocator->Free(a).ok());  // [free 6][b 6][free 8]: 14 MiB free, none 12
  std::string message;
  EXPECT_EQ(VerdictOf(f, 12 * kMiB, &message), OomVerdict::kFragmentation);
  EXPECT_NE(message.find("Cached and free: 14.00 MiB; largest free block: 8.00 MiB"),
            std::string::npos)
      << message;
  ASSERT_TRUE(f.allocator->Free(b).ok());
}

TEST(BudgetTest, VerdictDeviceFull) {
  Fixture f(20 * kMiB);
  void* a = f.Alloc(18 * kMiB);
  std::string message;
  EXPECT_EQ(VerdictOf(f, 4 * kMiB, &message), OomVerdict::kDeviceFull);
  EXPECT_NE(message.find("GPU 0 has a total capacity of 20.00 MiB of which 2.00 MiB is free"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("18.00 MiB is allocated by vramcache"), std::string::npos) << message;
  ASSERT_TRUE(f.allocator->Free(a).ok());
}

TEST(BudgetTest, VerdictOtherProcesses) {
  Fixture f(1024 * kMiB);
  f.device->SetExternalUsage(1000 * kMiB);
  std::string message;
  EXPECT_EQ(VerdictOf(f, 100 * kMiB, &message), OomVerdict::kOtherProcesses);
  EXPECT_NE(message.find("Other processes hold 1000.00 MiB"), std::string::npos) << message;
  f.device->SetExternalUsage(0);
}

TEST(BudgetTest, SoftBudgetReleasesLeastRecentlyUsedBeforeGrowing) {
  AllocatorConfig config;
  config.soft_budget_bytes = 80 * kMiB;
  Fixture f(std::size_t{1} << 30, config);
  void* old_block = f.Alloc(24 * kMiB);
  void* recent = f.Alloc(30 * kMiB);
  ASSERT_TRUE(f.allocator->Free(old_block).ok());
  ASSERT_TRUE(f.allocator->Free(recent).ok());
  // 54 MiB cached; growing by 40 MiB would pass 80 MiB by 14 MiB: releasing the least recently
  // freed segment (24 MiB) is enough.
  void* c = f.Alloc(40 * kMiB);
  const DeviceStats s = f.allocator->GetStats();
  EXPECT_EQ(s.num_cache_releases, 1);
  EXPECT_EQ(s.reserved_bytes.all().current, (30 + 40) * 1024 * 1024);
  EXPECT_EQ(s.num_device_free, 1);
  void* d = f.Alloc(30 * kMiB);  // the recently used segment is still cached
  EXPECT_EQ(d, recent);
  ASSERT_TRUE(f.allocator->Free(c).ok());
  ASSERT_TRUE(f.allocator->Free(d).ok());
}

TEST(BudgetTest, GarbageCollectionThresholdMapsToSoftBudget) {
  AllocatorConfig config;
  config.budget_bytes = 100 * kMiB;
  config.garbage_collection_threshold = 0.5;
  Fixture f(std::size_t{1} << 30, config);
  EXPECT_EQ(f.allocator->SoftBudget(), 50 * kMiB);
}

TEST(BudgetTest, MemoryFractionSetsBudgetOfDeviceTotal) {
  AllocatorConfig config;
  config.per_process_memory_fraction = 0.25;
  Fixture f(400 * kMiB, config);
  EXPECT_EQ(f.allocator->Budget(), 100 * kMiB);
  f.allocator->SetBudget(200 * kMiB);
  EXPECT_EQ(f.allocator->Budget(), 200 * kMiB);
  EXPECT_EQ(f.allocator->GetStats().budget_bytes, 200 * 1024 * 1024);
}

}  // namespace
}  // namespace vramcache

namespace vramcache {
namespace {

// torch.cuda.set_per_process_memory_fraction through the core, in both modes.
class MemoryFractionTest : public ::testing::TestWithParam<VmmMode> {
 protected:
  AllocatorConfig Config() const {
    AllocatorConfig config;
    config.vmm = GetParam();
    return config;
  }
};

// A program's fraction of 1.0 must not undo the operator's configured byte budget.
TEST_P(MemoryFractionTest, AFractionNeverRaisesTheConfiguredBudget) {
  AllocatorConfig config = Config();
  config.budget_bytes = 256 * kMiB;
  Fixture f(std::size_t{4} << 30, config);
  absl::StatusOr<std::size_t> over = f.allocator->SetMemoryFraction(1.0);
  ASSERT_TRUE(over.ok()) << over.status();
  EXPECT_EQ(f.allocator->Budget(), 256 * kMiB);
  absl::StatusOr<void*> big = f.allocator->Allocate(600 * kMiB, 0);
  EXPECT_TRUE(absl::IsResourceExhausted(big.status())) << big.status();
}

// A fraction that rounds to 0 bytes means that nothing fits, not "no cap".
TEST_P(MemoryFractionTest, ATinyFractionLetsNothingFit) {
  Fixture f(std::size_t{4} << 30, Config());
  for (double fraction : {1e-12, 0.0}) {
    absl::StatusOr<std::size_t> over = f.allocator->SetMemoryFraction(fraction);
    ASSERT_TRUE(over.ok()) << over.status();
    EXPECT_GT(f.allocator->Budget(), 0u) << fraction;
    absl::StatusOr<void*> p = f.allocator->Allocate(4096, 0);
    EXPECT_TRUE(absl::IsResourceExhausted(p.status())) << fraction << ": " << p.status();
  }
  for (double bad : {-0.1, 1.5}) {
    EXPECT_TRUE(absl::IsInvalidArgument(f.allocator->SetMemoryFraction(bad).status())) << bad;
  }
}

// Lowering the fraction below what is reserved releases cache down to it, and reports what
// live blocks keep above it.
TEST_P(MemoryFractionTest, LoweringTheFractionReleasesCacheDownToIt) {
  const std::size_t total = std::size_t{1} << 30;
  Fixture f(total, Config());
  std::vector<void*> blocks;
  for (int i = 0; i < 8; ++i) blocks.push_back(f.Alloc(100 * kMiB));
  void* kept = blocks.back();
  blocks.pop_back();
  for (void* p : blocks) ASSERT_TRUE(f.allocator->Free(p).ok());
  ASSERT_GE(f.allocator->GetStats().reserved_bytes.all().current,
            static_cast<std::int64_t>(700 * kMiB));
  absl::StatusOr<std::size_t> over = f.allocator->SetMemoryFraction(0.25);
  ASSERT_TRUE(over.ok()) << over.status();
  EXPECT_EQ(*over, 0u);
  EXPECT_LE(f.allocator->GetStats().reserved_bytes.all().current,
            static_cast<std::int64_t>(total / 4));
  EXPECT_EQ(f.device->HeldBytes(),
            static_cast<std::size_t>(f.allocator->GetStats().reserved_bytes.all().current));
  // Below what is live: nothing live is touched, and the excess is reported.
  over = f.allocator->SetMemoryFraction(0.05);
  ASSERT_TRUE(over.ok()) << over.status();
  EXPECT_GT(*over, 0u);
  EXPECT_EQ(*over, f.device->HeldBytes() - f.allocator->Budget());
  ASSERT_TRUE(f.allocator->Free(kept).ok());
  EXPECT_TRUE(f.allocator->CheckInvariants().ok());
}

INSTANTIATE_TEST_SUITE_P(BothModes, MemoryFractionTest,
                         ::testing::Values(VmmMode::kOn, VmmMode::kOff),
                         [](const ::testing::TestParamInfo<VmmMode>& info) {
                           return info.param == VmmMode::kOn ? std::string("vmm")
                                                             : std::string("segments");
                         });

}  // namespace
}  // namespace vramcache
