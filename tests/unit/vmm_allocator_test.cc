// The caching allocator in virtual-memory mode on the simulated device: stitching physical pages
// into new address ranges, giving chunks back, unmapping only after the last use completed,
// private pools kept backed, statistics equal to what the device holds, and every live byte
// intact across every step (memory mode: the simulated device really moves the bytes).
#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "allocator/core/caching_allocator.h"
#include "allocator/device/sim_device.h"
#include "gtest/gtest.h"
#include "tests/support/allocator_fixture.h"

namespace vramcache {
namespace {

// The shared fixture in virtual-memory mode (unless asked otherwise) on a device with memory,
// with the checks of what the blocks hold and of reserved bytes against the device.
struct Fixture : AllocatorFixture {
  explicit Fixture(std::size_t capacity, VmmMode mode = VmmMode::kOn, bool memory = true,
                   SimCompletion completion = SimCompletion::kImmediate,
                   AllocatorConfig config = {}) {
    AllocatorSetup setup;
    setup.device.capacity = capacity;
    setup.device.accounting_only = !memory;
    setup.device.completion = completion;
    setup.config = config;
    setup.config.vmm = mode;
    Make(setup);
  }
  absl::StatusOr<void*> Try(std::size_t size, StreamHandle stream = 0) {
    return allocator->Allocate(size, stream);
  }
  // A pattern unique to `ptr`, written over its first and last `probe` bytes (whole block when
  // smaller), so overlapping or remapped-away memory shows.
  void Stamp(void* ptr, std::size_t size) {
    std::vector<std::uint32_t> words(Probe(size) / 4);
    for (std::size_t i = 0; i < words.size(); ++i) words[i] = Word(ptr, i);
    const auto addr = reinterpret_cast<DevicePtr>(ptr);
    for (DevicePtr at : Probes(addr, size)) {
      ASSERT_TRUE(device->CopyFromHost(at, words.data(), words.size() * 4).ok());
    }
    stamped[ptr] = size;
  }
  void Forget(void* ptr) { stamped.erase(ptr); }
  // Every stamped block still holds its pattern.
  void VerifyAll() {
    for (const auto& [ptr, size] : stamped) {
      std::vector<std::uint32_t> words(Probe(size) / 4);
      const auto addr = reinterpret_cast<DevicePtr>(ptr);
      for (DevicePtr at : Probes(addr, size)) {
        ASSERT_TRUE(device->CopyToHost(at, words.data(), words.size() * 4).ok());
        for (std::size_t i = 0; i < words.size(); ++i) {
          ASSERT_EQ(words[i], Word(ptr, i))
              << "block " << ptr << " of " << size << " bytes lost its data at word " << i;
        }
      }
    }
  }
  // Where the probes go: the start, and the end when the two do not overlap.
  static std::vector<DevicePtr> Probes(DevicePtr addr, std::size_t size) {
    if (size < 2 * Probe(size)) return {addr};
    return {addr, addr + size - Probe(size)};
  }
  static std::size_t Probe(std::size_t size) { return std::min<std::size_t>(size, 4096) & ~3u; }
  static std::uint32_t Word(void* ptr, std::size_t i) {
    return static_cast<std::uint32_t>(reinterpret_cast<std::uintptr_t>(ptr) >> 9) * 2654435761u +
           static_cast<std::uint32_t>(i);
  }
  // reserved_bytes is the physical memory held: what the device says it gave us.
  void ExpectReservedIsHeld() {
    DeviceStats s = allocator->GetStats();
    EXPECT_EQ(static_cast<std::size_t>(s.reserved_bytes.all().current), device->HeldBytes());
    EXPECT_EQ(s.num_device_alloc, device->Calls(SimOp::kCreateChunk));
    EXPECT_EQ(s.num_map_calls, device->Calls(SimOp::kMap));
    EXPECT_EQ(s.num_unmap_calls, device->Calls(SimOp::kUnmap));
  }

  absl::flat_hash_map<void*, std::size_t> stamped;
};

// The "Swiss cheese": a card filled with alternating 8 MiB and 4 MiB blocks, every
// 8 MiB one freed, then one request of a third of the card. Only stitching can serve it.
void FillSwissCheese(Fixture& f, std::size_t capacity, std::vector<void*>* eights) {
  for (std::size_t used = 0; used + 12 * kMiB <= capacity; used += 12 * kMiB) {
    void* eight = f.Alloc(8 * kMiB);
    void* four = f.Alloc(4 * kMiB);
    ASSERT_NE(eight, nullptr);
    ASSERT_NE(four, nullptr);
    f.Stamp(four, 4 * kMiB);
    eights->push_back(eight);
  }
  for (void* p : *eights) ASSERT_TRUE(f.allocator->Free(p).ok());
}

constexpr std::size_t kCheeseCapacity = 480 * kMiB;  // 40 pairs of 8 + 4 MiB

TEST(VmmAllocatorTest, SwissCheeseRequestIsStitchedFromTheHoles) {
  Fixture f(kCheeseCapacity);
  std::vector<void*> eights;
  FillSwissCheese(f, kCheeseCapacity, &eights);
  ASSERT_EQ(f.device->HeldBytes(), kCheeseCapacity);
  const std::size_t third = kCheeseCapacity / 3;
  absl::StatusOr<void*> big = f.Try(third);
  ASSERT_TRUE(big.ok()) << big.status();
  f.Stamp(*big, third);
  f.VerifyAll();  // the 4 MiB blocks kept their bytes while their neighbours' pages moved
  DeviceStats s = f.allocator->GetStats();
  EXPECT_EQ(s.num_stitches, static_cast<std::int64_t>(third / (2 * kMiB)));
  EXPECT_LE(f.device->HeldBytes(), kCheeseCapacity);
  f.ExpectReservedIsHeld();
  EXPECT_GE(s.address_space_reserved_bytes, static_cast<std::int64_t>(kCheeseCapacity + third));
  ASSERT_TRUE(f.allocator->Free(*big).ok());
}

TEST(VmmAllocatorTest, SwissCheeseRequestFailsInSegmentMode) {
  Fixture f(kCheeseCapacity, VmmMode::kOff);
  std::vector<void*> eights;
  FillSwissCheese(f, kCheeseCapacity, &eights);
  absl::StatusOr<void*> big = f.Try(kCheeseCapacity / 3);
  ASSERT_FALSE(big.ok());
  EXPECT_TRUE(absl::IsResourceExhausted(big.status())) << big.status();
  f.VerifyAll();
}

TEST(VmmAllocatorTest, ReservedCountsPhysicalPagesNotAddressSpace) {
  Fixture f(std::size_t{1} << 30, VmmMode::kOn, /*memory=*/false);
  void* small = f.Alloc(1000);
  void* large = f.Alloc(3 * kMiB);  // two 2 MiB pages of a 1 GiB range
  DeviceStats s = f.allocator->GetStats();
  EXPECT_EQ(s.reserved_bytes.by_pool[1].current, static_cast<std::int64_t>(2 * kMiB));
  EXPECT_EQ(s.reserved_bytes.by_pool[2].current, static_cast<std::int64_t>(4 * kMiB));
  EXPECT_EQ(s.segment.all().current, 2);
  EXPECT_GT(s.address_space_reserved_bytes, static_cast<std::int64_t>(1) << 29);
  f.ExpectReservedIsHeld();
  // The segment is the address range; cacheInfo is what can be allocated (device free memory).
  absl::StatusOr<std::pair<DevicePtr, std::size_t>> base = f.allocator->BaseAllocation(large);
  ASSERT_TRUE(base.ok());
  EXPECT_LE(base->first, reinterpret_cast<DevicePtr>(large));
  EXPECT_GE(base->second, 3 * kMiB);
  EXPECT_EQ(f.allocator->LargestFreeBlock(), (std::size_t{1} << 30) - 6 * kMiB);
  f.allocator->SetBudget(10 * kMiB);  // a budget leaves 4 MiB of new chunks
  EXPECT_EQ(f.allocator->LargestFreeBlock(), 4 * kMiB);
  f.allocator->SetBudget(0);
  ASSERT_TRUE(f.allocator->Free(small).ok());
  ASSERT_TRUE(f.allocator->Free(large).ok());
}

TEST(VmmAllocatorTest, EmptyCacheGivesEveryFreeChunkBack) {
  Fixture f(std::size_t{1} << 30);
  std::vector<void*> blocks;
  for (int i = 0; i < 20; ++i) blocks.push_back(f.Alloc((i % 5 + 1) * 3 * kMiB));
  void* keep = f.Alloc(5 * kMiB);
  f.Stamp(keep, 5 * kMiB);
  for (void* p : blocks) ASSERT_TRUE(f.allocator->Free(p).ok());
  const std::size_t before = f.device->HeldBytes();
  ASSERT_TRUE(f.allocator->EmptyCache().ok());
  // What is left is the kept block's pages (at most one more on each side it shares).
  EXPECT_LT(f.device->HeldBytes(), before);
  EXPECT_LE(f.device->HeldBytes(), 8 * kMiB);
  DeviceStats s = f.allocator->GetStats();
  EXPECT_EQ(s.num_device_free, f.device->Calls(SimOp::kReleaseChunk));
  EXPECT_GT(s.num_device_free, 0);
  f.ExpectReservedIsHeld();
  f.VerifyAll();
  // The address ranges stay; new requests are backed again.
  void* again = f.Alloc(40 * kMiB);
  f.Stamp(again, 40 * kMiB);
  f.VerifyAll();
  ASSERT_TRUE(f.allocator->Free(again).ok());
  ASSERT_TRUE(f.allocator->Free(keep).ok());
}

TEST(VmmAllocatorTest, ChunkIsUnmappedOnlyAfterItsLastUseCompleted) {
  AllocatorConfig config;
  config.budget_bytes = 16 * kMiB;
  config.cross_stream = CrossStreamPolicy::kNone;  // the other stream gets its own range
  Fixture f(std::size_t{1} << 30, VmmMode::kOn, /*memory=*/false, SimCompletion::kManual, config);
  constexpr StreamHandle kStream = 5;
  constexpr StreamHandle kOtherStream = 6;
  void* first = f.Alloc(16 * kMiB, kStream);
  const std::uint64_t kernel = f.device->SubmitWork(kStream);  // still using `first`
  ASSERT_TRUE(f.allocator->Free(first).ok());
  EXPECT_EQ(f.device->Calls(SimOp::kUnmap), 0);
  // The budget is spent: the other stream's pages must come from `first`'s, which the kernel
  // may still be writing. The only safe way is to wait; then the chunks move.
  void* second = f.Alloc(16 * kMiB, kOtherStream);
  ASSERT_NE(second, nullptr);
  EXPECT_TRUE(f.device->IsWorkComplete(kernel));
  EXPECT_GE(f.allocator->GetStats().num_sync_all_streams, 1);
  EXPECT_LE(f.device->HeldBytes(), 16 * kMiB);
  EXPECT_EQ(f.allocator->GetStats().num_stitches, 8);
  ASSERT_TRUE(f.allocator->Free(second).ok());
}

TEST(VmmAllocatorTest, WaitingPagesAreNotStolenWhileTheirStreamRuns) {
  Fixture f(std::size_t{1} << 30, VmmMode::kOn, /*memory=*/false, SimCompletion::kManual);
  constexpr StreamHandle kStream = 5;
  void* first = f.Alloc(8 * kMiB, kStream);
  f.device->SubmitWork(kStream);
  ASSERT_TRUE(f.allocator->Free(first).ok());
  ASSERT_TRUE(f.allocator->EmptyCache().ok());  // synchronizes: its pages may go now
  EXPECT_EQ(f.device->HeldBytes(), 0u);
  void* a = f.Alloc(8 * kMiB, kStream);
  f.device->SubmitWork(kStream);
  ASSERT_TRUE(f.allocator->Free(a).ok());
  // No budget: a new request creates chunks rather than steal pages still in use.
  void* b = f.Alloc(30 * kMiB, kStream);
  EXPECT_EQ(f.device->Calls(SimOp::kUnmap), 4);  // only EmptyCache's
  EXPECT_EQ(f.allocator->GetStats().num_stitches, 0);
  ASSERT_TRUE(f.allocator->Free(b).ok());
}

TEST(VmmAllocatorTest, PrivatePoolStaysBackedUntilReleased) {
  AllocatorConfig config;
  config.budget_bytes = 40 * kMiB;
  Fixture f(std::size_t{1} << 30, VmmMode::kOn, /*memory=*/true, SimCompletion::kImmediate, config);
  constexpr StreamHandle kCapture = 9;
  constexpr PoolId kGraphPool = 3;
  f.allocator->BeginAllocateToPool(kGraphPool, [](StreamHandle s) { return s == kCapture; });
  void* graph_block = f.Alloc(20 * kMiB, kCapture);
  ASSERT_TRUE(f.allocator->EndAllocateToPool(kGraphPool).ok());
  ASSERT_TRUE(f.allocator->Free(graph_block).ok());
  // The graph's replays still use those addresses: their pages are not anyone else's.
  absl::StatusOr<void*> other = f.Try(30 * kMiB);
  EXPECT_FALSE(other.ok());
  EXPECT_TRUE(absl::IsResourceExhausted(other.status())) << other.status();
  ASSERT_TRUE(f.allocator->ReleasePool(kGraphPool).ok());
  other = f.Try(30 * kMiB);
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_LE(f.device->HeldBytes(), 40 * kMiB);
  f.ExpectReservedIsHeld();
  ASSERT_TRUE(f.allocator->Free(*other).ok());
}

TEST(VmmAllocatorTest, BudgetHoldsAndOutOfMemoryExplainsItself) {
  AllocatorConfig config;
  config.budget_bytes = 64 * kMiB;
  Fixture f(std::size_t{1} << 30, VmmMode::kOn, /*memory=*/false, SimCompletion::kImmediate,
            config);
  void* a = f.Alloc(40 * kMiB);
  absl::StatusOr<void*> b = f.Try(30 * kMiB);
  ASSERT_FALSE(b.ok());
  EXPECT_TRUE(absl::IsResourceExhausted(b.status()));
  EXPECT_NE(b.status().message().find("budget"), std::string::npos) << b.status();
  EXPECT_LE(f.device->HeldBytes(), 64 * kMiB);
  ASSERT_TRUE(f.allocator->Free(a).ok());
  b = f.Try(60 * kMiB);  // stitched from a's pages plus new ones, within the budget
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_LE(f.device->HeldBytes(), 64 * kMiB);
  f.ExpectReservedIsHeld();
  ASSERT_TRUE(f.allocator->Free(*b).ok());
}

TEST(VmmAllocatorTest, VmmOnWithoutDeviceSupportFallsBackInTheCore) {
  // The registry refuses vmm:on on such a device (c_api_test); the core itself never calls
  // virtual-memory functions the device lacks.
  AllocatorSetup setup;
  setup.device.vmm_supported = false;
  setup.config.vmm = VmmMode::kOn;
  AllocatorFixture f(setup);
  absl::StatusOr<void*> p = f.allocator->Allocate(3 * kMiB, 0);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(f.device->Calls(SimOp::kReserveAddress), 0);
  EXPECT_EQ(f.device->Calls(SimOp::kMalloc), 1);
  ASSERT_TRUE(f.allocator->Free(*p).ok());
}

TEST(VmmAllocatorTest, UnmapOnFreeMakesEveryUseAfterFreeFault) {
  AllocatorConfig config;
  config.unmap_on_free = true;
  Fixture f(std::size_t{1} << 30, VmmMode::kOn, /*memory=*/true, SimCompletion::kImmediate, config);
  absl::flat_hash_map<void*, int> seen;
  for (int i = 0; i < 8; ++i) {
    const std::size_t size = i % 2 == 0 ? 1000 : 3 * kMiB;
    void* p = f.Alloc(size);
    ASSERT_NE(p, nullptr);
    EXPECT_TRUE(seen.emplace(p, i).second) << "address " << p << " handed out twice";
    f.Stamp(p, size);
    f.VerifyAll();
    // Whole pages of its own: the cost of the mode, counted in allocated_bytes.
    EXPECT_EQ(*f.allocator->AllocationSize(p), size == 1000 ? 2 * kMiB : 4 * kMiB);
    ASSERT_TRUE(f.allocator->Free(p).ok());
    f.Forget(p);
    char byte = 0;
    EXPECT_FALSE(f.device->CopyToHost(reinterpret_cast<DevicePtr>(p), &byte, 1).ok())
        << "freed memory is still mapped";
    absl::Status again = f.allocator->Free(p);
    EXPECT_TRUE(absl::IsInvalidArgument(again)) << again;
  }
  // Physical chunks are recycled; only addresses are not.
  EXPECT_LE(f.allocator->GetStats().num_device_alloc, 2);
  f.ExpectReservedIsHeld();
}

TEST(VmmAllocatorTest, PeerAccessCoversPresentAndFutureMappings) {
  Fixture f(std::size_t{1} << 30, VmmMode::kOn, /*memory=*/false);
  void* before = f.Alloc(5 * kMiB);  // three pages mapped before the peer is enabled
  EXPECT_TRUE(absl::IsInvalidArgument(f.allocator->EnablePeerAccess(0)));  // itself
  EXPECT_TRUE(absl::IsInvalidArgument(f.allocator->EnablePeerAccess(-1)));
  ASSERT_TRUE(f.allocator->EnablePeerAccess(1).ok());
  EXPECT_EQ(f.device->Calls(SimOp::kGrantPeerAccess), 3);
  ASSERT_TRUE(f.allocator->EnablePeerAccess(1).ok());  // idempotent
  EXPECT_EQ(f.device->Calls(SimOp::kGrantPeerAccess), 3);
  void* after = f.Alloc(40 * kMiB);  // 20 more pages, each granted as it is mapped
  EXPECT_EQ(f.device->Calls(SimOp::kGrantPeerAccess), f.device->Calls(SimOp::kMap));
  ASSERT_TRUE(f.allocator->Free(before).ok());
  ASSERT_TRUE(f.allocator->Free(after).ok());
}

TEST(VmmAllocatorTest, PeerAccessInSegmentModeNeedsNothing) {
  Fixture f(std::size_t{1} << 30, VmmMode::kOff, /*memory=*/false);
  void* p = f.Alloc(5 * kMiB);
  ASSERT_TRUE(f.allocator->EnablePeerAccess(1).ok());
  EXPECT_EQ(f.device->Calls(SimOp::kGrantPeerAccess), 0);
  ASSERT_TRUE(f.allocator->Free(p).ok());
}

// Randomized: a small card, mixed sizes on two streams, frees in random order, EmptyCache now
// and then; after every step all live blocks keep their bytes and the invariants hold.
// A training loop: the same step again and again, each step punching holes and then asking
// for more than any hole. The first step stitches the holes' chunks into the large block; the
// old mappings stay as aliases, so every later step finds each chunk mapped wherever it needs
// it and makes no device call at all, with memory at the first step's level. (Without aliases
// each step would move the chunks there and back: 2 calls per chunk each way.)
TEST(VmmAllocatorTest, ARepeatedStepStopsCallingTheDevice) {
  Fixture f(512 * kMiB, VmmMode::kOn, /*memory=*/false);
  auto device_calls = [&] {
    int calls = 0;
    for (SimOp op : {SimOp::kCreateChunk, SimOp::kReleaseChunk, SimOp::kMap, SimOp::kUnmap,
                     SimOp::kMalloc, SimOp::kFree}) {
      calls += f.device->Calls(op);
    }
    return calls;
  };
  std::vector<int> calls_per_step;
  std::vector<std::int64_t> reserved_per_step;
  for (int step = 0; step < 5; ++step) {
    const int before = device_calls();
    std::vector<void*> small;
    for (int i = 0; i < 24; ++i) small.push_back(f.Alloc(4 * kMiB));
    for (int i = 1; i < 24; i += 2) ASSERT_TRUE(f.allocator->Free(small[i]).ok());
    void* large = f.Alloc(40 * kMiB);
    ASSERT_TRUE(f.allocator->Free(large).ok());
    for (int i = 0; i < 24; i += 2) ASSERT_TRUE(f.allocator->Free(small[i]).ok());
    calls_per_step.push_back(device_calls() - before);
    reserved_per_step.push_back(f.allocator->GetStats().reserved_bytes.all().peak);
  }
  EXPECT_GT(f.allocator->GetStats().num_stitches, 0) << "the first step stitched";
  EXPECT_LE(reserved_per_step[0], static_cast<std::int64_t>(96 * kMiB + 4 * kMiB));
  for (int step = 1; step < 5; ++step) {
    EXPECT_EQ(calls_per_step[step], 0) << "step " << step;
    EXPECT_EQ(reserved_per_step[step], reserved_per_step[0]) << "step " << step;
  }
}

TEST(VmmAllocatorTest, RandomizedStitchingLosesNothing) {
  for (std::uint32_t seed : {1u, 2u, 3u}) {
    SCOPED_TRACE(seed);
    Fixture f(160 * kMiB);
    std::mt19937 rng(seed);
    std::vector<std::pair<void*, std::size_t>> live;
    std::size_t live_bytes = 0;
    for (int step = 0; step < 400; ++step) {
      const bool allocate = live.empty() || rng() % 100 < 55;
      if (allocate) {
        const std::size_t size =
            rng() % 4 == 0 ? 1 + rng() % (64 << 10) : (1 + rng() % 24) * kMiB + rng() % kMiB;
        if (live_bytes + size > 100 * kMiB) continue;
        const StreamHandle stream = rng() % 2;
        void* p = f.Alloc(size, stream);
        ASSERT_NE(p, nullptr) << "step " << step << ": " << live_bytes << " bytes live";
        f.Stamp(p, size);
        live.emplace_back(p, size);
        live_bytes += size;
      } else {
        const std::size_t i = rng() % live.size();
        ASSERT_TRUE(f.allocator->Free(live[i].first).ok());
        f.Forget(live[i].first);
        live_bytes -= live[i].second;
        live[i] = live.back();
        live.pop_back();
      }
      if (step % 50 == 49) {
        ASSERT_TRUE(f.allocator->EmptyCache().ok());
      }
      f.VerifyAll();
      ASSERT_TRUE(f.allocator->CheckInvariants().ok()) << f.allocator->CheckInvariants();
      f.ExpectReservedIsHeld();
    }
    EXPECT_GT(f.allocator->GetStats().num_stitches, 0);
    for (auto& [p, size] : live) ASSERT_TRUE(f.allocator->Free(p).ok());
  }
}

}  // namespace
}  // namespace vramcache
