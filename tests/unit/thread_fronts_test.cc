// Per-thread fronts (allocator/core/thread_fronts.h): two threads take turns in an order the
// test decides, so that what each call must return and what the statistics must read, peaks
// included, is known exactly; bad pointers given to a front's blocks; and every path that needs
// the fronts' blocks back in the allocator's hands (growth under a budget, empty_cache, a
// destroyed stream).
#include <algorithm>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "allocator/core/caching_allocator.h"
#include "allocator/core/config.h"
#include "gtest/gtest.h"
#include "tests/support/allocator_fixture.h"
#include "tests/support/hazard_scene.h"

namespace vramcache {
namespace {

// A second thread that runs one call at a time while the caller waits.
class TurnThread {
 public:
  TurnThread() : thread_([this] { Loop(); }) {}
  ~TurnThread() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  void Run(const std::function<void()>& fn) {
    std::unique_lock<std::mutex> lock(mu_);
    work_ = &fn;
    cv_.notify_all();
    cv_.wait(lock, [this] { return work_ == nullptr; });
  }

 private:
  void Loop() {
    std::unique_lock<std::mutex> lock(mu_);
    while (true) {
      cv_.wait(lock, [this] { return stop_ || work_ != nullptr; });
      if (work_ != nullptr) {
        (*work_)();
        work_ = nullptr;
        cv_.notify_all();
      } else if (stop_) {
        return;
      }
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  const std::function<void()>* work_ = nullptr;
  bool stop_ = false;
  std::thread thread_;
};

AllocatorSetup FrontSetup(VmmMode mode) {
  AllocatorSetup setup;
  setup.device.capacity = std::size_t{4} << 30;
  setup.config.vmm = mode;
  setup.check_invariants = false;  // per-step checks turn the fronts off; checked at points here
  return setup;
}

class ThreadFrontsTest : public AllocatorTest<::testing::TestWithParam<VmmMode>> {
 protected:
  // Makes the allocator and lets the second thread use it once, which starts the fronts.
  void MakeWithFronts(AllocatorSetup setup) {
    Make(setup);
    void* p = nullptr;
    // On this thread's stream: in virtual-memory mode its range stays (empty_cache keeps
    // address space), and a block this thread borrowed from another stream's range would be
    // no front's.
    other_.Run([&] { p = Alloc(512, kMyStream); });
    ASSERT_NE(p, nullptr);
    other_.Run([&] { ASSERT_TRUE(allocator->Free(p).ok()); });
    // Its segment goes: no stream borrows from the other's (such a block is no front's).
    ASSERT_TRUE(allocator->EmptyCache().ok());
  }
  void* AllocOn(TurnThread* thread, std::size_t size, StreamHandle stream) {
    void* p = nullptr;
    if (thread == nullptr) return Alloc(size, stream);
    thread->Run([&] { p = Alloc(size, stream); });
    return p;
  }
  absl::Status FreeOn(TurnThread* thread, void* p) {
    absl::Status s;
    if (thread == nullptr) return allocator->Free(p);
    thread->Run([&] { s = allocator->Free(p); });
    return s;
  }

  static constexpr StreamHandle kMyStream = 5;
  static constexpr StreamHandle kOtherStream = 6;
  TurnThread other_;
};

// A freed block comes back to the same thread's next request of its size and stream, and no
// other thread sees it meanwhile; the statistics say it was freed and reused.
TEST_P(ThreadFrontsTest, AThreadsFreedBlockServesItsNextRequestAndNoOtherThread) {
  MakeWithFronts(FrontSetup(GetParam()));
  void* p = Alloc(256 * kKiB, kMyStream);
  ASSERT_TRUE(allocator->Free(p).ok());  // enters this thread's front
  const DeviceStats freed = allocator->GetStats();
  EXPECT_EQ(freed.allocation.all().current, 0);
  EXPECT_EQ(freed.requested_bytes.all().current, 0);
  EXPECT_EQ(freed.active.all().current, 0);

  // The other thread, same stream and size: not the front's block.
  void* q = AllocOn(&other_, 256 * kKiB, kMyStream);
  EXPECT_NE(q, p);
  const std::int64_t hits = allocator->GetStats().num_cache_hits;
  void* again = Alloc(200 * kKiB, kMyStream);  // rounds to the same size, asks less
  EXPECT_EQ(again, p);
  const DeviceStats reused = allocator->GetStats();
  EXPECT_EQ(reused.num_cache_hits, hits + 1);
  EXPECT_EQ(reused.allocation.all().current, 2);
  EXPECT_EQ(reused.requested_bytes.all().current, 456 * std::int64_t{kKiB});
  ASSERT_TRUE(FreeOn(&other_, q).ok());
  ASSERT_TRUE(allocator->Free(again).ok());
  ASSERT_TRUE(allocator->CheckInvariants().ok());
}

// A pointer a front holds cached is not live: a second free, a record_stream and a free from
// another thread are refused, and nothing changes.
TEST_P(ThreadFrontsTest, APointerCachedInAFrontIsRefusedEverywhere) {
  MakeWithFronts(FrontSetup(GetParam()));
  void* p = Alloc(64 * kKiB, kMyStream);
  ASSERT_TRUE(allocator->Free(p).ok());
  const DeviceStats before = allocator->GetStats();
  EXPECT_TRUE(absl::IsInvalidArgument(allocator->Free(p)));
  EXPECT_TRUE(absl::IsInvalidArgument(FreeOn(&other_, p)));
  EXPECT_TRUE(absl::IsInvalidArgument(allocator->RecordStream(p, kOtherStream)));
  EXPECT_TRUE(absl::IsNotFound(allocator->AllocationSize(p).status()));
  const DeviceStats after = allocator->GetStats();
  EXPECT_EQ(after.ToKeyValues(), before.ToKeyValues());
  // Asking left it in the front: the other thread, same stream and size, does not get it.
  void* other = AllocOn(&other_, 64 * kKiB, kMyStream);
  EXPECT_NE(other, p);
  ASSERT_TRUE(FreeOn(&other_, other).ok());
  ASSERT_TRUE(allocator->CheckInvariants().ok());
}

// A block a front handed out may be freed by another thread: it leaves the front, and its
// first thread's free of the same pointer afterwards is a double free.
TEST_P(ThreadFrontsTest, AnotherThreadMayFreeAFrontsBlockOnce) {
  MakeWithFronts(FrontSetup(GetParam()));
  void* p = Alloc(8 * kKiB, kMyStream);
  ASSERT_TRUE(allocator->Free(p).ok());
  void* again = Alloc(8 * kKiB, kMyStream);  // out of the front
  ASSERT_EQ(again, p);
  ASSERT_TRUE(FreeOn(&other_, again).ok());
  EXPECT_TRUE(absl::IsInvalidArgument(allocator->Free(again)));
  const DeviceStats s = allocator->GetStats();
  EXPECT_EQ(s.allocation.all().current, 0);
  EXPECT_EQ(s.allocated_bytes.all().current, 0);
  EXPECT_EQ(s.active_bytes.all().current, 0);
  ASSERT_TRUE(allocator->CheckInvariants().ok());
}

// What the fronts hold is memory the allocator can use: under a budget, a request that needs it
// gets it instead of an out-of-memory; empty_cache gives it back to the device.
TEST_P(ThreadFrontsTest, GrowthAndEmptyCacheTakeWhatFrontsHold) {
  AllocatorSetup setup = FrontSetup(GetParam());
  setup.conf = "budget:64MiB";
  MakeWithFronts(setup);
  void* p = Alloc(6 * kMiB, kMyStream);
  ASSERT_TRUE(allocator->Free(p).ok());  // into this thread's front
  EXPECT_EQ(allocator->GetStats().allocated_bytes.all().current, 0);
  // The other thread needs nearly the whole budget, on its own stream.
  void* big = AllocOn(&other_, 60 * kMiB, kOtherStream);
  ASSERT_NE(big, nullptr);
  EXPECT_EQ(allocator->GetStats().num_ooms, 0);
  ASSERT_TRUE(FreeOn(&other_, big).ok());
  void* small = Alloc(6 * kMiB, kMyStream);
  ASSERT_TRUE(allocator->Free(small).ok());
  ASSERT_TRUE(allocator->EmptyCache().ok());
  const DeviceStats s = allocator->GetStats();
  EXPECT_EQ(s.reserved_bytes.all().current, 0);
  EXPECT_EQ(s.inactive_split_bytes.all().current, 0);
  ASSERT_TRUE(allocator->CheckInvariants().ok());
}

// A stream destroyed while a front caches a block for it, its kernel still running: the
// handle's next stream (CUDA hands the same value out again) may not get that block before the
// kernel is done. The device reports a kernel touching bytes that incomplete work touches.
struct FrontScene : HazardScene {
  explicit FrontScene(VmmMode mode) {
    AllocatorSetup setup = FrontSetup(mode);
    setup.device.capacity = 256 * kMiB;
    setup.device.accounting_only = false;
    setup.device.completion = SimCompletion::kManual;
    Make(setup);
  }
};

TEST_P(ThreadFrontsTest, ADestroyedStreamsBlockLeavesTheFront) {
  FrontScene scene(GetParam());
  TurnThread other;
  void* warm = nullptr;
  other.Run([&] { warm = scene.Alloc(512, kOtherStream); });
  other.Run([&] { ASSERT_TRUE(scene.allocator->Free(warm).ok()); });
  ASSERT_TRUE(scene.allocator->EmptyCache().ok());
  const StreamHandle s = scene.device->CreateStream();
  void* p = scene.Alloc(32 * kKiB, s);
  scene.Kernel(s, p, 32 * kKiB, 1);
  ASSERT_TRUE(scene.allocator->Free(p).ok());  // into this thread's front, the kernel running
  ASSERT_TRUE(scene.allocator->StreamDestroyed(s).ok());
  ASSERT_TRUE(scene.device->DestroyStream(s).ok());
  const StreamHandle next = scene.device->CreateStream();
  ASSERT_EQ(next, s);  // the handle again
  void* q = scene.Alloc(32 * kKiB, next);
  scene.Kernel(next, q, 32 * kKiB, 2);
  ASSERT_TRUE(scene.allocator->Free(q).ok());
  Make(FrontSetup(GetParam()));  // the fixture's own allocator, for its teardown
}

// The model: two threads take turns at random (seeded) allocations, frees of their own blocks
// and of each other's, reads of the statistics, resets of the peaks and empty_cache. Each
// request's size and each live block is known, so allocation and requested_bytes (current,
// peak, accumulated) are known exactly at every read; the other counters must read the same
// before and after the fronts are flushed into the allocator (CheckInvariants recounts them).
TEST_P(ThreadFrontsTest, StatisticsOfTwoThreadsTakingTurnsMatchAModel) {
  // Each step is a hand-over between threads: a twentieth of the seeds keeps it to seconds.
  const int seeds = std::max(1, VRAMCACHE_RANDOM_SEEDS / 20);
  for (int seed = 1; seed <= seeds; ++seed) {
    SCOPED_TRACE(absl::StrCat("seed ", seed));
    MakeWithFronts(FrontSetup(GetParam()));
    allocator->ResetPeakStats();
    allocator->ResetAccumulatedStats();
    std::mt19937_64 rng(static_cast<std::uint64_t>(seed));
    // Pairs that round to one size with different requests, small and large pool.
    const std::size_t sizes[] = {3000,           3070,     64 * kKiB,      60 * kKiB,
                                 2 * kMiB + 100, 2 * kMiB, 4 * kMiB - 500, 4 * kMiB};
    struct Live {
      int thread;
      std::size_t size;
    };
    std::map<void*, Live> live;
    std::int64_t requested = 0, requested_peak = 0, count = 0, count_peak = 0, allocs = 0;
    for (int step = 0; step < 400; ++step) {
      const int t = static_cast<int>(rng() % 2);
      TurnThread* thread = t == 0 ? nullptr : &other_;
      const int op = static_cast<int>(rng() % 100);
      if (op < 45 || live.empty()) {
        const std::size_t size = sizes[rng() % std::size(sizes)];
        const StreamHandle stream = rng() % 4 == 0 ? kMyStream + 1 - t : kMyStream + t;
        void* p = AllocOn(thread, size, stream);
        ASSERT_NE(p, nullptr);
        ASSERT_EQ(live.count(p), 0u) << "handed out twice";
        live[p] = Live{t, size};
        requested += static_cast<std::int64_t>(size);
        ++count;
        ++allocs;
        requested_peak = std::max(requested_peak, requested);
        count_peak = std::max(count_peak, count);
      } else if (op < 90) {
        // Mostly the thread's own blocks; sometimes the other's.
        auto it = live.begin();
        std::advance(it, static_cast<long>(rng() % live.size()));
        if (rng() % 4 != 0) {
          for (auto own = live.begin(); own != live.end(); ++own) {
            if (own->second.thread == t) {
              it = own;
              break;
            }
          }
        }
        ASSERT_TRUE(FreeOn(thread, it->first).ok());
        requested -= static_cast<std::int64_t>(it->second.size);
        --count;
        live.erase(it);
      } else if (op < 96) {
        const DeviceStats s = allocator->GetStats();
        ASSERT_EQ(s.requested_bytes.all().current, requested);
        ASSERT_EQ(s.requested_bytes.all().peak, requested_peak);
        ASSERT_EQ(s.allocation.all().current, count);
        ASSERT_EQ(s.allocation.all().peak, count_peak);
        ASSERT_EQ(s.allocation.all().allocated, allocs);
        ASSERT_EQ(s.allocation.all().freed(), allocs - count);
        // No counter above its peak: a front's change the peak did not cover would show here.
        const auto pairs = s.ToKeyValues();
        std::map<std::string, std::int64_t> values(pairs.begin(), pairs.end());
        for (const auto& [key, value] : values) {
          if (!absl::EndsWith(key, ".current")) continue;
          const std::string peak = absl::StrCat(key.substr(0, key.size() - 8), ".peak");
          ASSERT_LE(value, values[peak]) << key << " at step " << step;
        }
        // Flushing the fronts into the allocator changes no statistic.
        ASSERT_TRUE(allocator->CheckInvariants().ok());
        const DeviceStats flushed = allocator->GetStats();
        const auto before = s.ToKeyValues();
        const auto after = flushed.ToKeyValues();
        ASSERT_EQ(before.size(), after.size());
        for (std::size_t k = 0; k < before.size(); ++k) {
          // Virtual-memory mode: what overflows the 1 MiB reuse cache is coalesced, and pages
          // no block covers any more go back: only the split and reserved counts may move.
          if (GetParam() == VmmMode::kOn && !absl::StartsWith(before[k].first, "allocat") &&
              !absl::StartsWith(before[k].first, "requested") &&
              !absl::StartsWith(before[k].first, "active") &&
              !absl::StartsWith(before[k].first, "oversize_allocations") &&
              !absl::StartsWith(before[k].first, "num_cache_hits")) {
            continue;
          }
          ASSERT_EQ(after[k], before[k]) << "step " << step << ": flushing the fronts changed it";
        }
      } else if (op < 98) {
        allocator->ResetPeakStats();
        requested_peak = requested;
        count_peak = count;
      } else {
        ASSERT_TRUE(allocator->EmptyCache().ok());
      }
    }
    for (auto& [p, l] : live) ASSERT_TRUE(FreeOn(l.thread == 0 ? nullptr : &other_, p).ok());
    const DeviceStats end = allocator->GetStats();
    EXPECT_EQ(end.requested_bytes.all().current, 0);
    EXPECT_EQ(end.requested_bytes.all().peak, requested_peak);
    EXPECT_EQ(end.allocation.all().peak, count_peak);
    ASSERT_TRUE(allocator->CheckInvariants().ok());
    ASSERT_TRUE(Teardown());
  }
}

INSTANTIATE_TEST_SUITE_P(BothModes, ThreadFrontsTest,
                         ::testing::Values(VmmMode::kOff, VmmMode::kOn), [](const auto& info) {
                           return std::string(info.param == VmmMode::kOn ? "vmm" : "segment");
                         });

}  // namespace
}  // namespace vramcache
