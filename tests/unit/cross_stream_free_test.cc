// Cross-stream frees (issue #18): a block freed while another stream may still use it waits
// for one event, recorded on that stream, and then goes into the reuse cache whole, under the
// stream that allocated it; no second event (a page's free mark) is recorded for it unless the
// cache is flushed. Each scene drives the allocator with kernels that touch their allocations
// (SimDevice::LaunchWork, manual completion) and asserts that the device saw no hazard; the
// ordering test fails when a completed-looking free enters the cache before its event
// completes (docs/design.md, "Why reuse is safe"). In virtual-memory mode a stream does not
// borrow back a block it gave back; it grows a range of its own.
#include <cstddef>
#include <cstdint>
#include <memory>

#include "allocator/core/caching_allocator.h"
#include "allocator/device/sim_device.h"
#include "allocator/device/sim_hazards.h"
#include "allocator/device/sim_op.h"
#include "gtest/gtest.h"
#include "tests/support/allocator_fixture.h"
#include "tests/support/hazard_scene.h"

namespace vramcache {
namespace {

struct Scene : HazardScene {
  explicit Scene(VmmMode mode, bool canaries = false) {
    AllocatorSetup setup;
    setup.device.capacity = 256 * kMiB;
    setup.device.accounting_only = false;
    setup.device.completion = SimCompletion::kManual;
    setup.config.vmm = mode;
    setup.config.canaries = canaries;
    Make(setup);
  }
  std::int64_t EventsRecorded() const { return device->Calls(SimOp::kRecordEvent); }
};

constexpr StreamHandle kA = 1;
constexpr StreamHandle kB = 2;

const char* ModeName(VmmMode mode) { return mode == VmmMode::kOn ? "vmm" : "segments"; }

// The ordering: the block freed while B still reads it is not handed out again (to its own
// stream either) before B's event completes; once it has, its own stream gets it back.
TEST(CrossStreamFreeTest, TheBlockIsCachedOnlyAfterTheOtherStreamsWorkCompletes) {
  for (VmmMode mode : {VmmMode::kOff, VmmMode::kOn}) {
    SCOPED_TRACE(ModeName(mode));
    Scene scene(mode);
    for (std::size_t size : {std::size_t{4 * kKiB}, std::size_t{kMiB}}) {
      SCOPED_TRACE(size);
      void* p = scene.Alloc(size, kA);
      scene.Kernel(kA, p, size, 1);
      scene.Order(kA, kB);
      const std::uint64_t reader = scene.Kernel(kB, p, size, 1);  // B still reads p
      ASSERT_TRUE(scene.allocator->RecordStream(p, kB).ok());
      ASSERT_TRUE(scene.allocator->Free(p).ok());
      void* q = scene.Alloc(size, kA);
      EXPECT_NE(q, p) << "reused while stream B still used it";
      scene.Kernel(kA, q, size, 2);  // the device reports a hazard if q overlaps B's reader
      ASSERT_TRUE(scene.device->CompleteWork(kB, reader).ok());
      void* r = scene.Alloc(size, kA);
      EXPECT_EQ(r, p) << "the completed free was not cached for its own stream";
      scene.Kernel(kA, r, size, 3);
      ASSERT_TRUE(scene.allocator->Free(q).ok());
      ASSERT_TRUE(scene.allocator->Free(r).ok());
      scene.device->CompleteAll();
    }
  }
}

// One event per cross-stream free: the record_stream stream's, and no free mark of a page
// (virtual-memory mode recorded one when the completed free released the block's pages).
TEST(CrossStreamFreeTest, ACrossStreamFreeRecordsOneEvent) {
  for (VmmMode mode : {VmmMode::kOff, VmmMode::kOn}) {
    SCOPED_TRACE(ModeName(mode));
    Scene scene(mode);
    void* p = scene.Alloc(kMiB, kA);
    constexpr int kPairs = 8;
    std::int64_t recorded = 0;
    for (int i = 0; i < kPairs; ++i) {
      scene.Order(kA, kB);
      scene.Kernel(kB, p, kMiB, 1);
      const std::int64_t before = scene.EventsRecorded();
      ASSERT_TRUE(scene.allocator->RecordStream(p, kB).ok());
      ASSERT_TRUE(scene.allocator->Free(p).ok());
      scene.device->CompleteAll();
      void* next = scene.Alloc(kMiB, kA);
      recorded += scene.EventsRecorded() - before;
      EXPECT_EQ(next, p);
      p = next;
    }
    EXPECT_EQ(recorded, kPairs);
    EXPECT_EQ(scene.allocator->GetStats().num_cross_stream_reuse, 0);
    ASSERT_TRUE(scene.allocator->Free(p).ok());
  }
}

// A stream that borrowed a block from another stream's free list takes it back from the reuse
// cache once its free completed: it borrows once, not at every allocation, and every reuse is
// ordered after the previous user's work.
TEST(CrossStreamFreeTest, ABorrowingStreamTakesItsCompletedFreeBackWithoutBorrowingAgain) {
  for (VmmMode mode : {VmmMode::kOff, VmmMode::kOn}) {
    SCOPED_TRACE(ModeName(mode));
    Scene scene(mode);
    void* owned = scene.Alloc(8 * kKiB, kA);  // A's small segment, mostly free
    scene.Kernel(kA, owned, 8 * kKiB, 1);
    scene.device->CompleteAll();
    void* borrowed = scene.Alloc(8 * kKiB, kB);  // from A's free list
    ASSERT_NE(borrowed, nullptr);
    const std::int64_t borrows = scene.allocator->GetStats().num_cross_stream_reuse;
    EXPECT_EQ(borrows, 1);
    for (int i = 0; i < 4; ++i) {
      scene.Kernel(kB, borrowed, 8 * kKiB, 2 + i);
      ASSERT_TRUE(scene.allocator->Free(borrowed).ok());
      scene.device->CompleteAll();
      void* again = scene.Alloc(8 * kKiB, kB);
      EXPECT_EQ(again, borrowed);
      borrowed = again;
    }
    EXPECT_EQ(scene.allocator->GetStats().num_cross_stream_reuse, borrows);
    // Its own stream gets the block after a flush only once B's last use completed.
    scene.Kernel(kB, borrowed, 8 * kKiB, 10);
    ASSERT_TRUE(scene.allocator->Free(borrowed).ok());
    void* big = scene.Alloc(64 * kMiB, kA);  // a miss: flushes the reuse cache
    void* mine = scene.Alloc(8 * kKiB, kA);
    scene.Kernel(kA, mine, 8 * kKiB, 11);
    for (void* p : {owned, big, mine}) ASSERT_TRUE(scene.allocator->Free(p).ok());
  }
}

// Two streams trading one block (docs/design.md, "Borrowing"): B borrows A's free 4 MiB block
// (too large for the reuse cache, so its free goes home to A's range), frees it, and asks again.
// Virtual-memory mode: B does not borrow back the block it used last; it reserves a range of its
// own (address space: the pages come from the same chunk pool) and is served from it from then
// on, with no event. Segment mode grows nothing: a segment of its own would be new device
// memory, and its larger reuse cache keeps the completed free for B anyway. Every use is checked
// against the device's incomplete work.
TEST(CrossStreamFreeTest, AStreamThatGaveABlockBackGrowsItsOwnRangeOnlyInVirtualMemoryMode) {
  constexpr std::size_t kBlock = 4 * kMiB;
  for (VmmMode mode : {VmmMode::kOff, VmmMode::kOn}) {
    SCOPED_TRACE(ModeName(mode));
    Scene scene(mode);
    void* owned = scene.Alloc(kBlock, kA);
    scene.Kernel(kA, owned, kBlock, 1);
    ASSERT_TRUE(scene.allocator->Free(owned).ok());
    const std::int64_t ranges_before =
        scene.device->Calls(SimOp::kReserveAddress) + scene.device->Calls(SimOp::kMalloc);
    void* borrowed = scene.Alloc(kBlock, kB);
    ASSERT_EQ(borrowed, owned);  // A's free block, behind A's work
    EXPECT_EQ(scene.allocator->GetStats().num_cross_stream_reuse, 1);
    for (int i = 0; i < 4; ++i) {
      scene.Kernel(kB, borrowed, kBlock, 2 + i);
      ASSERT_TRUE(scene.allocator->Free(borrowed).ok());
      scene.device->CompleteAll();
      borrowed = scene.Alloc(kBlock, kB);
      ASSERT_NE(borrowed, nullptr);
    }
    const DeviceStats stats = scene.allocator->GetStats();
    const std::int64_t new_ranges = scene.device->Calls(SimOp::kReserveAddress) +
                                    scene.device->Calls(SimOp::kMalloc) - ranges_before;
    if (mode == VmmMode::kOn) {
      EXPECT_EQ(stats.num_cross_stream_reuse, 1) << "borrowed back the block it gave back";
      EXPECT_EQ(new_ranges, 1);
      EXPECT_NE(borrowed, owned);
    } else {
      // Segment mode's reuse cache (256 MiB) keeps the completed free for B: no second borrow.
      EXPECT_EQ(stats.num_cross_stream_reuse, 1);
      EXPECT_EQ(new_ranges, 0);
      EXPECT_EQ(borrowed, owned);
    }
    // A gets its block back, ordered after B's work on it (the device reports a hazard if not).
    void* mine = scene.Alloc(kBlock, kA);
    scene.Kernel(kA, mine, kBlock, 10);
    scene.Kernel(kB, borrowed, kBlock, 11);
    for (void* p : {mine, borrowed}) ASSERT_TRUE(scene.allocator->Free(p).ok());
    scene.device->CompleteAll();
  }
}

// A stream destroyed after it gave a borrowed block back: a new stream given the same handle
// never traded that block, so it borrows it as any stream would, instead of growing a range of
// its own (the rule above is about the stream that gave it back, not about its handle).
TEST(CrossStreamFreeTest, ANewStreamWithADestroyedStreamsHandleBorrowsAsAnyStream) {
  constexpr std::size_t block = 4 * kMiB;
  Scene scene(VmmMode::kOn);
  const StreamHandle b = scene.device->CreateStream();
  void* owned = scene.Alloc(block, kA);
  scene.Kernel(kA, owned, block, 1);
  ASSERT_TRUE(scene.allocator->Free(owned).ok());
  void* borrowed = scene.Alloc(block, b);
  ASSERT_EQ(borrowed, owned);
  scene.Kernel(b, borrowed, block, 2);
  ASSERT_TRUE(scene.allocator->Free(borrowed).ok());
  scene.device->CompleteAll();
  ASSERT_TRUE(scene.allocator->StreamDestroyed(b).ok());
  ASSERT_TRUE(scene.device->DestroyStream(b).ok());
  ASSERT_EQ(scene.device->CreateStream(), b);  // a new stream, the same handle
  const std::int64_t ranges_before = scene.device->Calls(SimOp::kReserveAddress);
  void* again = scene.Alloc(block, b);  // a new stream, the same handle
  EXPECT_EQ(again, owned);
  EXPECT_EQ(scene.device->Calls(SimOp::kReserveAddress), ranges_before);
  EXPECT_EQ(scene.allocator->GetStats().num_cross_stream_reuse, 2);
  scene.Kernel(b, again, block, 3);
  ASSERT_TRUE(scene.allocator->Free(again).ok());
  scene.device->CompleteAll();
}

// The home stream destroyed while its block's cross-stream free waits: the completed free goes
// back to the pool (parked behind the dead stream's last work), not into a dead stream's list;
// a new stream with the same handle is served without a hazard.
TEST(CrossStreamFreeTest, ADestroyedStreamsCompletedFreeIsNotCachedForIt) {
  for (VmmMode mode : {VmmMode::kOff, VmmMode::kOn}) {
    SCOPED_TRACE(ModeName(mode));
    Scene scene(mode);
    const StreamHandle s = scene.device->CreateStream();
    void* p = scene.Alloc(kMiB, s);
    scene.Kernel(s, p, kMiB, 1);
    scene.Order(s, kB);
    scene.Kernel(kB, p, kMiB, 1);
    ASSERT_TRUE(scene.allocator->RecordStream(p, kB).ok());
    ASSERT_TRUE(scene.allocator->Free(p).ok());
    ASSERT_TRUE(scene.allocator->StreamDestroyed(s).ok());
    ASSERT_TRUE(scene.device->DestroyStream(s).ok());
    scene.device->CompleteAll();
    void* q = scene.Alloc(kMiB, kA);
    scene.Kernel(kA, q, kMiB, 2);
    ASSERT_TRUE(scene.allocator->Free(q).ok());
  }
}

// Canaries poison a freed block on its own stream: a borrowed block whose free completed goes
// back to the pool there, so the borrower's next use waits for the poison fill.
TEST(CrossStreamFreeTest, WithCanariesABorrowedBlockIsPoisonedBeforeItsNextUse) {
  for (VmmMode mode : {VmmMode::kOff, VmmMode::kOn}) {
    SCOPED_TRACE(ModeName(mode));
    Scene scene(mode, /*canaries=*/true);
    void* owned = scene.Alloc(8 * kKiB, kA);
    scene.device->CompleteAll();
    void* borrowed = scene.Alloc(8 * kKiB, kB);
    ASSERT_NE(borrowed, nullptr);
    scene.Kernel(kB, borrowed, 8 * kKiB, 2);
    ASSERT_TRUE(scene.allocator->Free(borrowed).ok());
    scene.device->CompleteAll();
    void* again = scene.Alloc(8 * kKiB, kB);
    ASSERT_NE(again, nullptr);
    scene.Kernel(kB, again, 8 * kKiB, 3);
    for (void* p : {owned, again}) ASSERT_TRUE(scene.allocator->Free(p).ok());
  }
}

}  // namespace
}  // namespace vramcache
