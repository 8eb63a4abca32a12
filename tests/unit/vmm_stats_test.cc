// Statistics and snapshots in terms of physical memory and live blocks (docs/stats.md), in
// both modes where the question applies: the cases where virtual-memory mode used to count
// address space (inactive_split, snapshot segments), and memory of a destroyed stream that was
// counted as active. Each test checks the numbers against what the device holds.
#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "allocator/core/caching_allocator.h"
#include "gtest/gtest.h"
#include "tests/support/allocator_fixture.h"
#include "tests/support/stats_recount.h"

namespace vramcache {
namespace {

constexpr std::int64_t kMiB64 = std::int64_t{1} << 20;

class VmmStatsTest : public AllocatorTest<::testing::TestWithParam<VmmMode>> {
 protected:
  void SetUp() override {
    AllocatorSetup setup;
    setup.device.capacity = std::size_t{4} << 30;
    setup.config.vmm = GetParam();
    Make(setup);
  }
  bool vmm() const { return GetParam() == VmmMode::kOn; }
  void ExpectRecountAgrees(const std::vector<RecountedAllocation>& live) {
    const std::vector<std::string> differences =
        RecountDifferences(*allocator, *device, live, RecountScope{});
    for (const std::string& difference : differences) ADD_FAILURE() << difference;
  }
};

// A 3 MiB block in a 1 GiB arena holds two 2 MiB pages: 1 MiB of them is stranded. The rest of
// the arena is address space, which holds no memory (it was counted as 1 GiB - 3 MiB).
TEST_P(VmmStatsTest, InactiveSplitCountsStrandedMemoryNotAddressSpace) {
  void* small_neighbour = Alloc(3 * kMiB);
  DeviceStats stats = allocator->GetStats();
  const std::int64_t reserved = stats.reserved_bytes.all().current;
  const std::int64_t allocated = stats.allocated_bytes.all().current;
  EXPECT_EQ(allocated, 3 * kMiB64);
  EXPECT_LE(stats.inactive_split_bytes.all().current, reserved - allocated);
  if (vmm()) {
    EXPECT_EQ(reserved, 4 * kMiB64);
    EXPECT_EQ(stats.inactive_split_bytes.all().current, 1 * kMiB64);
    EXPECT_EQ(stats.inactive_split.all().current, 1);  // the second page, shared with free bytes
    EXPECT_EQ(stats.inactive_split_bytes.all().peak, 1 * kMiB64);
  }
  ExpectRecountAgrees({{small_neighbour, 3 * kMiB}});
  ASSERT_TRUE(allocator->Free(small_neighbour).ok());
  ASSERT_TRUE(allocator->EmptyCache().ok());
  stats = allocator->GetStats();
  EXPECT_EQ(stats.reserved_bytes.all().current, 0);
  EXPECT_EQ(stats.inactive_split_bytes.all().current, 0);
  EXPECT_EQ(stats.inactive_split.all().current, 0);
  ExpectRecountAgrees({});
}

// Memory cached for a stream that is destroyed waits for that stream's last work, but holds
// nobody's data: it is not active (it was: 1 GiB in virtual-memory mode, with nothing live).
TEST_P(VmmStatsTest, MemoryOfADestroyedStreamIsNotActive) {
  constexpr StreamHandle kSide = 0x10;
  void* p = Alloc(3 * kMiB, kSide);
  ASSERT_TRUE(allocator->Free(p).ok());
  ASSERT_TRUE(allocator->StreamDestroyed(kSide).ok());
  DeviceStats stats = allocator->GetStats();
  EXPECT_EQ(stats.allocated_bytes.all().current, 0);
  EXPECT_EQ(stats.active_bytes.all().current, 0);
  EXPECT_EQ(stats.active.all().current, 0);
  EXPECT_LE(stats.active_bytes.all().peak, stats.reserved_bytes.all().peak);
  ExpectRecountAgrees({});
  // Once its event is seen complete, the memory is free for the handle's next stream.
  void* again = Alloc(3 * kMiB, kSide);
  ExpectRecountAgrees({{again, 3 * kMiB}});
  ASSERT_TRUE(allocator->Free(again).ok());
}

// A snapshot segment is memory the device gave: a cudaMalloc, or in virtual-memory mode a run
// of pages holding chunks. They add up to reserved_bytes; a failed huge request adds nothing.
TEST_P(VmmStatsTest, SnapshotSegmentsAddUpToReservedMemory) {
  void* a = Alloc(3 * kMiB);
  void* b = Alloc(100 * 1024);
  EXPECT_FALSE(allocator->Allocate(std::size_t{16} << 40, 0).ok());
  std::int64_t total = 0;
  std::size_t largest = 0;
  for (const SegmentInfo& segment : allocator->Snapshot()) {
    total += static_cast<std::int64_t>(segment.size);
    largest = std::max(largest, segment.size);
    std::size_t covered = 0;
    for (const BlockInfo& block : segment.blocks) covered += block.size;
    EXPECT_EQ(covered, segment.size) << "blocks tile their segment";
  }
  EXPECT_EQ(total, allocator->GetStats().reserved_bytes.all().current);
  if (vmm()) {
    EXPECT_EQ(largest, 4 * kMiB);  // the two pages under the 3 MiB block, not its 1 GiB arena
  }
  ExpectRecountAgrees({{a, 3 * kMiB}, {b, 100 * 1024}});
  ASSERT_TRUE(allocator->Free(a).ok());
  ASSERT_TRUE(allocator->Free(b).ok());
}

// Readers on another thread see allocated <= active <= reserved in every copy they take, while
// threads allocate, free, record_stream and destroy their streams (active exceeded reserved
// hundreds of times a run in virtual-memory mode: parked address space counted as active).
TEST_P(VmmStatsTest, ReadersNeverSeeActiveAboveReserved) {
  std::atomic<bool> done{false};
  std::atomic<int> violations{0};
  std::atomic<std::int64_t> reads{0};
  std::thread reader([&] {
    while (!done.load()) {
      const DeviceStats s = allocator->GetStats();
      for (int p = 0; p < kNumPoolStats; ++p) {
        const std::int64_t allocated = s.allocated_bytes.by_pool[p].current;
        const std::int64_t active = s.active_bytes.by_pool[p].current;
        const std::int64_t reserved = s.reserved_bytes.by_pool[p].current;
        const std::int64_t split = s.inactive_split_bytes.by_pool[p].current;
        if (allocated > active || active > reserved || split < 0 || split > reserved - allocated) {
          violations.fetch_add(1);
        }
      }
      reads.fetch_add(1);
    }
  });
  // The workers start after the reader's first copy: on a loaded 2-core machine they could
  // otherwise finish before the reader ran at all (reads == 0, a flaky failure).
  while (reads.load() == 0) std::this_thread::yield();
  std::vector<std::thread> workers;
  for (int t = 0; t < 3; ++t) {
    workers.emplace_back([&, t] {
      StreamHandle stream = 0x100 + static_cast<StreamHandle>(t) * 0x1000;
      for (int round = 0; round < 40; ++round) {
        std::vector<void*> held;
        for (int i = 0; i < 6; ++i) {
          absl::StatusOr<void*> p = allocator->Allocate((1 + (i * 7 + round) % 9) * kMiB, stream);
          if (p.ok()) held.push_back(*p);
        }
        if (!held.empty()) allocator->RecordStream(held.front(), 0).IgnoreError();
        for (void* p : held) EXPECT_TRUE(allocator->Free(p).ok());
        EXPECT_TRUE(allocator->StreamDestroyed(stream).ok());
        ++stream;  // the next round's stream
      }
    });
  }
  for (std::thread& w : workers) w.join();
  done.store(true);
  reader.join();
  EXPECT_GT(reads.load(), 0);
  EXPECT_EQ(violations.load(), 0) << "of " << reads.load() << " reads";
  ASSERT_TRUE(allocator->EmptyCache().ok());
  ExpectRecountAgrees({});
}

INSTANTIATE_TEST_SUITE_P(BothModes, VmmStatsTest, ::testing::Values(VmmMode::kOn, VmmMode::kOff),
                         [](const ::testing::TestParamInfo<VmmMode>& info) {
                           return info.param == VmmMode::kOn ? "vmm" : "segments";
                         });

}  // namespace
}  // namespace vramcache
