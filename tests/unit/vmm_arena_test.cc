// VmmArena and ChunkPool on the simulated device in memory mode: pages are backed when ranges
// come into use, stay mapped when they go, move between arenas (stitching) only once their last
// use has completed, the budget holds at every instant, Trim and ReleaseAll give memory back,
// and the bytes of every live range survive all of it.
#include "allocator/core/vmm_arena.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "allocator/core/config.h"
#include "allocator/device/sim_device.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/status_macros.h"

namespace vramcache {
namespace {

using ::testing::HasSubstr;

constexpr std::size_t kGran = 2 * kMiB;

// Bytes that differ with the seed and with the position (a page moved or swapped shows), as
// 64-bit words: cheap enough to write and compare megabytes per step in Debug builds.
std::vector<std::uint64_t> Pattern(std::uint64_t seed, std::size_t bytes) {
  std::vector<std::uint64_t> words((bytes + 7) / 8);
  std::uint64_t x = (seed + 1) * 0x9E3779B97F4A7C15ull | 1;
  for (std::uint64_t& word : words) {
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    word = x * 0x2545F4914F6CDD1Dull;
  }
  return words;
}

// A byte range in use, and the seed of the pattern written there.
struct LiveRange {
  VmmArena* arena = nullptr;
  DevicePtr addr = 0;
  std::size_t bytes = 0;
  std::uint64_t seed = 0;
};

class Rig {
 public:
  explicit Rig(std::size_t capacity_pages, std::size_t granularity = kGran,
               SimCompletion completion = SimCompletion::kImmediate)
      : granularity_(granularity) {
    SimDeviceOptions options;
    options.capacity = capacity_pages * granularity;
    options.granularity = granularity;
    options.accounting_only = false;
    options.completion = completion;
    device_ = std::make_unique<SimDevice>(options);
    pool_ = std::make_unique<ChunkPool>(device_.get(), granularity);
  }
  ~Rig() {
    // The pool goes first: it gives its ranges back to the device.
    pool_.reset();
  }

  SimDevice& device() { return *device_; }
  ChunkPool& pool() { return *pool_; }
  std::size_t g() const { return granularity_; }

  absl::Status Write(const LiveRange& r) {
    const std::vector<std::uint64_t> words = Pattern(r.seed, r.bytes);
    return device_->CopyFromHost(r.addr, words.data(), r.bytes);
  }
  // Acquires the range and writes its pattern.
  absl::Status AcquireAndWrite(const LiveRange& r) {
    if (absl::Status s = r.arena->Acquire(r.addr, r.bytes); !s.ok()) return s;
    return Write(r);
  }
  ::testing::AssertionResult Intact(const LiveRange& r) {
    const std::vector<std::uint64_t> expected = Pattern(r.seed, r.bytes);
    std::vector<std::uint64_t> found(expected.size());
    if (absl::Status s = device_->CopyToHost(r.addr, found.data(), r.bytes); !s.ok()) {
      return ::testing::AssertionFailure()
             << "cannot read " << r.bytes << " bytes at " << std::hex << r.addr << ": " << s;
    }
    if (std::memcmp(found.data(), expected.data(), r.bytes) == 0) {
      return ::testing::AssertionSuccess();
    }
    const auto* f = reinterpret_cast<const std::uint8_t*>(found.data());
    const auto* e = reinterpret_cast<const std::uint8_t*>(expected.data());
    std::size_t offset = 0;
    while (f[offset] == e[offset]) ++offset;
    return ::testing::AssertionFailure() << "range at " << std::hex << r.addr << " (" << std::dec
                                         << r.bytes << " bytes) differs first at offset " << offset;
  }
  ::testing::AssertionResult AllIntact(const std::vector<LiveRange>& ranges) {
    for (const LiveRange& r : ranges) {
      if (auto result = Intact(r); !result) return result;
    }
    return ::testing::AssertionSuccess();
  }
  // The pool's invariants, and its view of the device agrees with the device's.
  ::testing::AssertionResult Consistent() {
    if (absl::Status s = pool_->CheckInvariants(); !s.ok()) {
      return ::testing::AssertionFailure() << s;
    }
    const SimCounters c = device_->Counters();
    if (c.chunk_bytes != pool_->held_bytes() || c.mapped_bytes != pool_->mapped_bytes()) {
      return ::testing::AssertionFailure()
             << "device holds " << c.chunk_bytes << " chunk bytes, " << c.mapped_bytes
             << " mapped; pool says " << pool_->held_bytes() << " and " << pool_->mapped_bytes();
    }
    return ::testing::AssertionSuccess();
  }

 private:
  std::size_t granularity_;
  std::unique_ptr<SimDevice> device_;
  std::unique_ptr<ChunkPool> pool_;
};

TEST(VmmArenaTest, AcquireMapsEveryTouchedPageOnce) {
  Rig rig(16);
  ASSIGN_OR_FAIL(arena, rig.pool().CreateArena(8 * kGran, /*stream=*/0));
  EXPECT_EQ(arena->page_count(), 8u);
  EXPECT_EQ(rig.pool().held_bytes(), 0u);
  EXPECT_EQ(rig.device().Calls(SimOp::kCreateChunk), 0);

  // Half a page into page 0, through half of page 1: both pages.
  const LiveRange a{arena, arena->base() + kGran / 2, kGran, 1};
  ASSERT_OK(rig.AcquireAndWrite(a));
  EXPECT_EQ(rig.device().Calls(SimOp::kMap), 2);
  EXPECT_EQ(rig.pool().held_bytes(), 2 * kGran);
  EXPECT_EQ(arena->page(0).live, 1u);
  EXPECT_EQ(arena->page(1).live, 1u);
  EXPECT_FALSE(arena->page(2).mapped);

  // Another range on page 1 only: counted, nothing mapped.
  const LiveRange b{arena, arena->base() + 3 * kGran / 2, kGran / 4, 2};
  ASSERT_OK(rig.AcquireAndWrite(b));
  EXPECT_EQ(rig.device().Calls(SimOp::kMap), 2);
  EXPECT_EQ(arena->page(1).live, 2u);
  EXPECT_EQ(arena->live_pages(), 2u);
  EXPECT_EQ(rig.pool().counters().chunks_created, 2u);
  ASSERT_OK(arena->UnbackedPages(arena->base(), 8 * kGran).status());
  EXPECT_EQ(*arena->UnbackedPages(arena->base(), 8 * kGran), 6u);

  // Releasing one of the two ranges on page 1 leaves it live.
  ASSERT_OK(arena->Release(b.addr, b.bytes));
  EXPECT_EQ(arena->page(1).live, 1u);
  EXPECT_TRUE(rig.Intact(a));
  EXPECT_TRUE(rig.Consistent());
}

TEST(VmmArenaTest, BadInputIsRejectedAndChangesNothing) {
  Rig rig(8);
  EXPECT_TRUE(absl::IsInvalidArgument(rig.pool().CreateArena(0, 0).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(rig.pool().CreateArena(kGran + 4096, 0).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(ChunkPool::Create(&rig.device(), 3 * kMiB).status()));
  ASSIGN_OR_FAIL(arena, rig.pool().CreateArena(4 * kGran, 0));
  ASSERT_OK(arena->Acquire(arena->base(), kGran));
  rig.device().ResetCallCounts();
  const SimCounters before = rig.device().Counters();

  const DevicePtr base = arena->base();
  absl::Status s = arena->Acquire(base + 3 * kGran, 2 * kGran);  // runs past the end
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  EXPECT_THAT(s.message(), HasSubstr("not inside the arena"));
  EXPECT_TRUE(absl::IsInvalidArgument(arena->Acquire(base - kGran, kGran)));
  EXPECT_TRUE(absl::IsInvalidArgument(arena->Acquire(base, 0)));
  EXPECT_TRUE(absl::IsInvalidArgument(
      arena->Acquire(base + kGran, std::numeric_limits<std::size_t>::max())));
  EXPECT_TRUE(absl::IsInvalidArgument(arena->Release(base + 4 * kGran, 1)));
  EXPECT_TRUE(absl::IsInvalidArgument(arena->UnbackedPages(base, 5 * kGran).status()));
  // Page 1 was never acquired: releasing pages 0 and 1 fails before touching page 0.
  s = arena->Release(base, 2 * kGran);
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  EXPECT_THAT(s.message(), HasSubstr("released more often than acquired"));
  EXPECT_EQ(arena->page(0).live, 1u);

  ASSERT_OK(arena->Release(base, kGran));
  s = arena->Release(base, kGran);  // twice
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  EXPECT_EQ(arena->page(0).live, 0u);
  EXPECT_TRUE(arena->page(0).mapped);

  const SimCounters after = rig.device().Counters();
  EXPECT_EQ(after.Calls(SimOp::kMap), 0);
  EXPECT_EQ(after.Calls(SimOp::kCreateChunk), 0);
  EXPECT_EQ(after.live_chunks, before.live_chunks);
  EXPECT_EQ(rig.pool().held_bytes(), kGran);
  EXPECT_TRUE(rig.Consistent());
}

TEST(VmmArenaTest, ReuseInPlaceMakesNoMappingCallsAndRecyclesItsEvent) {
  Rig rig(8);
  ASSIGN_OR_FAIL(arena, rig.pool().CreateArena(4 * kGran, 7));
  const LiveRange r{arena, arena->base() + 100, 3 * kGran, 5};
  ASSERT_OK(rig.AcquireAndWrite(r));
  rig.device().ResetCallCounts();
  for (int cycle = 0; cycle < 10; ++cycle) {
    ASSERT_OK(arena->Release(r.addr, r.bytes));
    EXPECT_EQ(arena->live_pages(), 0u);
    EXPECT_EQ(arena->mapped_pages(), 4u);
    ASSERT_OK(arena->Acquire(r.addr, r.bytes));
    ASSERT_TRUE(rig.Consistent());
  }
  for (SimOp op : {SimOp::kMap, SimOp::kUnmap, SimOp::kCreateChunk, SimOp::kReleaseChunk,
                   SimOp::kSynchronizeEvent, SimOp::kSynchronizeDevice}) {
    EXPECT_EQ(rig.device().Calls(op), 0) << SimOpName(op);
  }
  // One event per Release, the same one each time.
  EXPECT_EQ(rig.device().Calls(SimOp::kRecordEvent), 10);
  EXPECT_EQ(rig.device().Calls(SimOp::kCreateEvent), 1);
  EXPECT_EQ(rig.device().LiveEvents(), 1u);
  // The chunks never moved, so neither did the bytes.
  EXPECT_TRUE(rig.Intact(r));
}

TEST(VmmArenaTest, DataSurvivesOtherRangesComingAndGoing) {
  Rig rig(12);
  ASSIGN_OR_FAIL(x, rig.pool().CreateArena(8 * kGran, 1));
  ASSIGN_OR_FAIL(y, rig.pool().CreateArena(8 * kGran, 2));
  std::vector<LiveRange> kept = {
      {x, x->base() + 10 * 1024, kGran, 11},           // pages 0-1 of x
      {x, x->base() + 5 * kGran + 512, 3 * 1024, 12},  // inside page 5
      {y, y->base() + kGran, 2 * kGran + 8, 13},       // pages 1-3 of y
  };
  for (const LiveRange& r : kept) ASSERT_OK(rig.AcquireAndWrite(r));
  std::uint64_t seed = 100;
  for (int round = 0; round < 4; ++round) {
    // Neighbours on shared pages and elsewhere come and go; some steal, some create.
    std::vector<LiveRange> passing = {
        {x, x->base() + kGran + kGran / 2, kGran, seed++},  // shares page 1 with kept[0]
        {x, x->base() + 5 * kGran + 8192, 4096, seed++},    // shares page 5 with kept[1]
        {y, y->base() + 4 * kGran, 3 * kGran, seed++},
    };
    for (const LiveRange& r : passing) ASSERT_OK(rig.AcquireAndWrite(r));
    ASSERT_TRUE(rig.AllIntact(kept));
    ASSERT_TRUE(rig.AllIntact(passing));
    for (const LiveRange& r : passing) ASSERT_OK(r.arena->Release(r.addr, r.bytes));
    if (round % 2 == 1)
      ASSERT_OK(rig.pool().Trim(std::numeric_limits<std::size_t>::max()).status());
    ASSERT_TRUE(rig.AllIntact(kept));
    ASSERT_TRUE(rig.Consistent());
  }
}

TEST(VmmArenaTest, StitchesFreePagesOfAnotherArenaWithoutGrowing) {
  Rig rig(8);  // the device holds 8 chunks at most
  ASSIGN_OR_FAIL(x, rig.pool().CreateArena(8 * kGran, 1));
  ASSIGN_OR_FAIL(y, rig.pool().CreateArena(8 * kGran, 2));
  std::vector<LiveRange> x_pages;
  for (std::size_t p = 0; p < 8; ++p) {
    x_pages.push_back({x, x->base() + p * kGran, kGran, 20 + p});
    ASSERT_OK(rig.AcquireAndWrite(x_pages.back()));
  }
  EXPECT_EQ(rig.pool().held_bytes(), 8 * kGran);
  // A full device: y can only be served by stitching.
  EXPECT_TRUE(absl::IsResourceExhausted(y->Acquire(y->base(), kGran)));
  ASSERT_TRUE(rig.Consistent());

  std::vector<LiveRange> x_live;
  for (std::size_t p = 0; p < 8; ++p) {
    if (p % 2 == 1) {
      ASSERT_OK(x->Release(x_pages[p].addr, x_pages[p].bytes));
    } else {
      x_live.push_back(x_pages[p]);
    }
  }
  const LiveRange y_range{y, y->base() + 2 * kGran, 4 * kGran, 40};
  ASSERT_OK(rig.AcquireAndWrite(y_range));
  EXPECT_EQ(rig.pool().counters().stitches, 4u);
  EXPECT_EQ(rig.pool().counters().chunks_created, 8u);
  EXPECT_EQ(rig.device().Calls(SimOp::kCreateChunk), 8);  // the refused one created none
  EXPECT_EQ(rig.device().HeldBytes(), 8 * kGran);
  // The stitch left x's holes mapped, as aliases of y's pages: no unmap was needed.
  for (std::size_t p = 1; p < 8; p += 2) EXPECT_TRUE(x->page(p).alias) << p;
  EXPECT_EQ(rig.device().Calls(SimOp::kUnmap), 0);
  ASSERT_TRUE(rig.AllIntact(x_live));
  ASSERT_TRUE(rig.Intact(y_range));
  ASSERT_TRUE(rig.Consistent());

  // And back: y's pages return to x's holes through the aliases, with no device call.
  ASSERT_OK(y->Release(y_range.addr, y_range.bytes));
  const int maps = rig.device().Calls(SimOp::kMap);
  x_live.push_back({x, x->base() + kGran, kGran, 50});
  ASSERT_OK(rig.AcquireAndWrite(x_live.back()));
  EXPECT_EQ(rig.device().Calls(SimOp::kMap), maps);
  EXPECT_EQ(rig.device().Calls(SimOp::kUnmap), 0);
  EXPECT_EQ(rig.pool().counters().stitches, 4u);
  EXPECT_EQ(rig.pool().counters().alias_reuses, 1u);
  EXPECT_EQ(rig.pool().counters().chunks_created, 8u);
  EXPECT_FALSE(x->page(1).alias);
  EXPECT_TRUE(y->page(2).alias) << "y's page keeps its mapping, now an alias";
  ASSERT_TRUE(rig.AllIntact(x_live));
  ASSERT_TRUE(rig.Consistent());
}

TEST(VmmArenaTest, WithAliasingOffAStitchUnmapsTheOldPage) {
  Rig rig(2);
  rig.pool().SetAliasing(false);
  ASSIGN_OR_FAIL(x, rig.pool().CreateArena(2 * kGran, 1));
  ASSIGN_OR_FAIL(y, rig.pool().CreateArena(2 * kGran, 2));
  ASSERT_OK(x->Acquire(x->base(), 2 * kGran));
  ASSERT_OK(x->Release(x->base(), kGran));
  ASSERT_OK(y->Acquire(y->base(), kGran));
  EXPECT_FALSE(x->page(0).mapped);
  EXPECT_EQ(rig.device().Calls(SimOp::kUnmap), 1);
  EXPECT_EQ(rig.pool().counters().stitches, 1u);
  EXPECT_TRUE(rig.Consistent());
}

TEST(VmmArenaTest, ABusyAliasWithNoChunkToBeHadChangesNothing) {
  Rig rig(1);  // one chunk: whoever uses it, the other page must wait
  ASSIGN_OR_FAIL(x, rig.pool().CreateArena(kGran, 1));
  ASSIGN_OR_FAIL(y, rig.pool().CreateArena(kGran, 2));
  ASSERT_OK(x->Acquire(x->base(), kGran));
  ASSERT_OK(x->Release(x->base(), kGran));
  const LiveRange in_y{y, y->base(), kGran, 70};
  ASSERT_OK(rig.AcquireAndWrite(in_y));
  EXPECT_TRUE(x->page(0).alias);

  // x's alias cannot take the chunk while y uses it, and no other chunk can be had: refused
  // by arithmetic before anything changes (the alias stays, its chunk serving y).
  absl::Status busy = x->Acquire(x->base(), kGran);
  EXPECT_TRUE(absl::IsResourceExhausted(busy)) << busy;
  EXPECT_TRUE(x->page(0).alias);
  EXPECT_EQ(x->page(0).live, 0u);
  EXPECT_EQ(rig.pool().counters().alias_conflicts, 0u);
  EXPECT_EQ(rig.device().Calls(SimOp::kUnmap), 0);
  EXPECT_TRUE(rig.Intact(in_y));
  ASSERT_TRUE(rig.Consistent());

  // Once y is done the chunk is stitched back into x; y keeps an alias.
  ASSERT_OK(y->Release(in_y.addr, in_y.bytes));
  const LiveRange in_x{x, x->base(), kGran, 71};
  ASSERT_OK(rig.AcquireAndWrite(in_x));
  EXPECT_TRUE(y->page(0).alias);
  EXPECT_EQ(rig.pool().counters().chunks_created, 1u);
  EXPECT_TRUE(rig.Intact(in_x));
  EXPECT_TRUE(rig.Consistent());
}

TEST(VmmArenaTest, AnAliasWaitsForAnotherStreamsWorkButNotForItsOwnStreams) {
  Rig rig(1, kGran, SimCompletion::kManual);
  ASSIGN_OR_FAIL(x, rig.pool().CreateArena(kGran, 1));
  ASSIGN_OR_FAIL(y, rig.pool().CreateArena(kGran, 2));
  ASSIGN_OR_FAIL(z, rig.pool().CreateArena(kGran, 2));  // y's stream
  ASSERT_OK(x->Acquire(x->base(), kGran));
  ASSERT_OK(x->Release(x->base(), kGran));
  rig.device().CompleteAll();
  ASSERT_OK(y->Acquire(y->base(), kGran));  // stitched: x's page becomes an alias
  ASSERT_OK(y->Release(y->base(), kGran));
  rig.device().CompleteAll();
  ASSERT_OK(z->Acquire(z->base(), kGran));  // stitched again: y's page becomes an alias too
  EXPECT_TRUE(x->page(0).alias);
  EXPECT_TRUE(y->page(0).alias);

  // z's last use is still running on stream 2 when it releases the page.
  const std::uint64_t kernel = rig.device().SubmitWork(2);
  ASSERT_OK(z->Release(z->base(), kGran));
  EXPECT_TRUE(z->page(0).waiting);
  // Stream 1 may not take the chunk yet (x's alias is unmapped instead, and nothing is left)...
  EXPECT_TRUE(absl::IsResourceExhausted(x->Acquire(x->base(), kGran)));
  EXPECT_FALSE(x->page(0).mapped);
  ASSERT_TRUE(rig.Consistent());
  // ...but stream 2 may: its work runs after the kernel.
  const int maps = rig.device().Calls(SimOp::kMap);
  ASSERT_OK(y->Acquire(y->base(), kGran));
  EXPECT_EQ(rig.device().Calls(SimOp::kMap), maps);
  EXPECT_EQ(rig.device().Calls(SimOp::kSynchronizeEvent), 0);
  EXPECT_EQ(rig.pool().counters().alias_reuses, 1u);
  EXPECT_EQ(y->page(0).live, 1u);
  ASSERT_TRUE(rig.Consistent());
  ASSERT_OK(rig.device().CompleteWork(2, kernel));
  ASSERT_OK(y->Release(y->base(), kGran));
  EXPECT_TRUE(rig.Consistent());
}

// A page (y's page 0) whose chunk is busy elsewhere, so that its next use needs a stitch, and
// two ready chunks: x's page 0's (freed first, the oldest; x0 was in use while y0 was) and x's
// page 1's (x1 was in use only after y0's use ended, or, with `overlap`, with y0's too).
struct CompatibilityScene {
  explicit CompatibilityScene(std::size_t capacity_pages) : rig(capacity_pages) {}

  void CreateArenas() {
    ASSIGN_OR_FAIL(new_x, rig.pool().CreateArena(2 * kGran, 1));
    ASSIGN_OR_FAIL(new_y, rig.pool().CreateArena(kGran, 1));
    ASSIGN_OR_FAIL(new_z, rig.pool().CreateArena(kGran, 1));
    x = new_x;
    y = new_y;
    z = new_z;
  }

  void Play(bool overlap) {
    ASSERT_OK(x->Acquire(x->base(), kGran));  // x0, a new chunk
    ASSERT_OK(y->Acquire(y->base(), kGran));  // y0, a new chunk, in use with x0
    if (overlap) ASSERT_OK(x->Acquire(x->base() + kGran, kGran));  // x1, with y0 too
    ASSERT_OK(y->Release(y->base(), kGran));
    ASSERT_OK(z->Acquire(z->base(), kGran));  // takes y0's chunk: y0 becomes its alias
    if (!overlap) ASSERT_OK(x->Acquire(x->base() + kGran, kGran));  // x1, after y0
    ASSERT_OK(x->Release(x->base(), kGran));                        // x0's chunk: ready, the oldest
    ASSERT_OK(x->Release(x->base() + kGran, kGran));                // x1's chunk: ready
    ASSERT_TRUE(y->page(0).alias);
    ASSERT_TRUE(rig.Consistent());
  }

  Rig rig;
  VmmArena* x = nullptr;
  VmmArena* y = nullptr;
  VmmArena* z = nullptr;
};

TEST(VmmArenaTest, AStitchTakesAChunkWhosePagesWereNeverInUseWithThePage) {
  CompatibilityScene scene(8);
  ASSERT_NO_FATAL_FAILURE(scene.CreateArenas());
  ASSERT_NO_FATAL_FAILURE(scene.Play(/*overlap=*/false));
  const std::uint64_t created = scene.rig.pool().counters().chunks_created;

  // y0's chunk is busy in z: y0 needs another. x0's is the oldest but was in use with y0;
  // x1's never was: y0 gets x1's, and x1 becomes its alias.
  ASSERT_OK(scene.y->Acquire(scene.y->base(), kGran));
  EXPECT_EQ(scene.rig.pool().counters().alias_conflicts, 1u);
  EXPECT_TRUE(scene.x->page(1).alias);
  EXPECT_FALSE(scene.x->page(0).alias) << "the oldest chunk stayed with x0";
  EXPECT_EQ(scene.rig.pool().counters().chunks_created, created);
  EXPECT_TRUE(scene.rig.Consistent());
}

TEST(VmmArenaTest, WithNoCompatibleChunkAndNoHeadroomAStitchTakesTheOldest) {
  CompatibilityScene scene(8);
  ASSERT_NO_FATAL_FAILURE(scene.CreateArenas());
  ASSERT_NO_FATAL_FAILURE(scene.Play(/*overlap=*/true));
  const std::uint64_t created = scene.rig.pool().counters().chunks_created;

  // Both ready chunks were in use with y0, and 3 pages at most were ever in use at once: 1/64
  // of that is no room for one more chunk, so y0 gets the oldest, x0's.
  ASSERT_OK(scene.y->Acquire(scene.y->base(), kGran));
  EXPECT_TRUE(scene.x->page(0).alias);
  EXPECT_FALSE(scene.x->page(1).alias);
  EXPECT_EQ(scene.rig.pool().counters().chunks_created, created);
  EXPECT_EQ(scene.rig.pool().counters().compatibility_creations, 0u);
  EXPECT_TRUE(scene.rig.Consistent());
}

TEST(VmmArenaTest, WithNoCompatibleChunkAStitchCreatesOneWithinTheHeadroom) {
  CompatibilityScene scene(80);
  ASSIGN_OR_FAIL(wide, scene.rig.pool().CreateArena(61 * kGran, 2));
  ASSERT_NO_FATAL_FAILURE(scene.CreateArenas());
  // With 61 more pages in use throughout, 64 are in use at once at most, on 64 chunks: the
  // headroom (64 / 64) leaves room for exactly one more.
  ASSERT_OK(wide->Acquire(wide->base(), 61 * kGran));
  ASSERT_NO_FATAL_FAILURE(scene.Play(/*overlap=*/true));
  EXPECT_EQ(scene.rig.pool().held_bytes(), 64 * kGran);
  const std::uint64_t created = scene.rig.pool().counters().chunks_created;

  ASSERT_OK(scene.y->Acquire(scene.y->base(), kGran));
  EXPECT_EQ(scene.rig.pool().counters().compatibility_creations, 1u);
  EXPECT_EQ(scene.rig.pool().counters().chunks_created, created + 1);
  EXPECT_EQ(scene.rig.pool().held_bytes(), 65 * kGran);
  EXPECT_FALSE(scene.x->page(0).alias) << "neither ready chunk was taken";
  EXPECT_FALSE(scene.x->page(1).alias);
  EXPECT_TRUE(scene.rig.Consistent());
}

// The pages of one release come back together: a mark seen running is queried once per Acquire.
TEST(VmmArenaTest, ARunningMarkIsQueriedOncePerAcquire) {
  Rig rig(4, kGran, SimCompletion::kManual);
  ASSIGN_OR_FAIL(x, rig.pool().CreateArena(2 * kGran, 1));
  ASSIGN_OR_FAIL(y, rig.pool().CreateArena(2 * kGran, 2));
  ASSERT_OK(x->Acquire(x->base(), 2 * kGran));
  ASSERT_OK(x->Release(x->base(), 2 * kGran));
  rig.device().CompleteAll();
  ASSERT_OK(y->Acquire(y->base(), 2 * kGran));  // both chunks stitched: x's pages are aliases
  const std::uint64_t kernel = rig.device().SubmitWork(2);
  ASSERT_OK(y->Release(y->base(), 2 * kGran));  // one mark, still running
  const int queries = rig.device().Calls(SimOp::kQueryEvent);
  // x takes no chunk back (stream 2's work runs): both aliases are unmapped and backed anew.
  ASSERT_OK(x->Acquire(x->base(), 2 * kGran));
  EXPECT_EQ(rig.pool().counters().alias_conflicts, 2u);
  // The mark: once for the two aliases; the stitch's scan may query it once more.
  EXPECT_LE(rig.device().Calls(SimOp::kQueryEvent) - queries, 2);
  ASSERT_OK(rig.device().CompleteWork(2, kernel));
  EXPECT_TRUE(rig.Consistent());
}

// A ready chunk whose alias keeps a fence (a same-stream claim made before the old holder's
// mark was seen complete) cannot be unmapped while no event may be queried: Trim, as EmptyCache
// during another thread's capture, passes over it and gives back what it can instead of
// failing (oracle seed 8440, VMM: EmptyCache failed with ResourceExhausted).
TEST(VmmArenaTest, WhileNoEventMayBeQueriedTrimPassesOverAChunkWhoseAliasIsFenced) {
  Rig rig(2, kGran, SimCompletion::kManual);
  ASSIGN_OR_FAIL(x, rig.pool().CreateArena(kGran, 1));
  ASSIGN_OR_FAIL(y, rig.pool().CreateArena(kGran, 1));
  ASSERT_OK(x->Acquire(x->base(), kGran));
  ASSERT_OK(x->Release(x->base(), kGran));
  rig.device().CompleteAll();
  ASSERT_OK(y->Acquire(y->base(), kGran));  // stitched: x's page becomes an alias
  EXPECT_TRUE(x->page(0).alias);
  rig.device().SubmitWork(1);  // y's last use, still queued
  ASSERT_OK(y->Release(y->base(), kGran));
  ASSERT_OK(x->Acquire(x->base(), kGran));  // same stream: claims the chunk back, y is fenced
  EXPECT_TRUE(y->page(0).alias);
  ASSERT_OK(x->Release(x->base(), kGran));
  rig.device().CompleteAll();
  // A trim sees x's mark complete (y's fenced mark, with no page listed, is not a candidate),
  // so x's page is ready; the query of y's fence then fails, and x's chunk stays as it was:
  // ready, still mapped at y too.
  rig.device().FailAfter(SimOp::kQueryEvent, 1, absl::InternalError("injected"));
  EXPECT_FALSE(rig.pool().Trim(SIZE_MAX).ok());
  EXPECT_FALSE(x->page(0).waiting);
  EXPECT_TRUE(x->page(0).mapped);
  EXPECT_TRUE(y->page(0).mapped);
  rig.device().ClearFailures();

  // No query allowed now (a capture): the chunk cannot go, and the trim says it gave nothing.
  rig.pool().SetEventQueriesAllowed(false);
  const int queries = rig.device().Calls(SimOp::kQueryEvent);
  const int unmaps = rig.device().Calls(SimOp::kUnmap);
  ASSIGN_OR_FAIL(trimmed, rig.pool().Trim(SIZE_MAX));
  EXPECT_EQ(trimmed, 0u);
  EXPECT_EQ(rig.device().Calls(SimOp::kQueryEvent), queries);
  EXPECT_EQ(rig.device().Calls(SimOp::kUnmap), unmaps);
  EXPECT_TRUE(x->page(0).mapped);
  EXPECT_TRUE(y->page(0).mapped);
  ASSERT_TRUE(rig.Consistent());

  // Allowed again: the fence is queried (complete), both mappings go, and so does the chunk.
  rig.pool().SetEventQueriesAllowed(true);
  ASSIGN_OR_FAIL(later, rig.pool().Trim(SIZE_MAX));
  EXPECT_EQ(later, kGran);
  EXPECT_FALSE(x->page(0).mapped);
  EXPECT_FALSE(y->page(0).mapped);
  EXPECT_TRUE(rig.Consistent());
}

TEST(VmmArenaTest, AFailedAliasMapGivesTheChunkBackToItsHolder) {
  Rig rig(1);
  ASSIGN_OR_FAIL(x, rig.pool().CreateArena(kGran, 1));
  ASSIGN_OR_FAIL(y, rig.pool().CreateArena(kGran, 2));
  const LiveRange kept{x, x->base(), kGran, 80};
  ASSERT_OK(rig.AcquireAndWrite(kept));
  ASSERT_OK(x->Release(x->base(), kGran));
  rig.device().FailNext(SimOp::kMap, absl::InternalError("injected alias map failure"));
  absl::Status failed = y->Acquire(y->base(), kGran);
  EXPECT_THAT(failed.message(), HasSubstr("injected alias map failure"));
  EXPECT_FALSE(x->page(0).alias) << "x holds its chunk again, free and ready";
  EXPECT_TRUE(x->page(0).mapped);
  EXPECT_FALSE(y->page(0).mapped);
  ASSERT_TRUE(rig.Consistent());
  // Nothing was lost: x takes it back in place, with its bytes.
  ASSERT_OK(x->Acquire(x->base(), kGran));
  EXPECT_TRUE(rig.Intact(kept));
  EXPECT_TRUE(rig.Consistent());
}

TEST(VmmArenaTest, StealsTheOldestFreePageFirst) {
  Rig rig(4);
  ASSIGN_OR_FAIL(x, rig.pool().CreateArena(4 * kGran, 1));
  ASSIGN_OR_FAIL(y, rig.pool().CreateArena(4 * kGran, 2));
  ASSERT_OK(x->Acquire(x->base(), 4 * kGran));
  ASSERT_OK(x->Release(x->base() + 3 * kGran, kGran));  // freed first
  ASSERT_OK(x->Release(x->base() + 1 * kGran, kGran));
  ASSERT_OK(y->Acquire(y->base(), kGran));
  EXPECT_TRUE(x->page(3).alias);
  EXPECT_FALSE(x->page(1).alias);
  ASSERT_OK(y->Acquire(y->base() + kGran, kGran));
  EXPECT_TRUE(x->page(1).alias);
  EXPECT_TRUE(rig.Consistent());
}

TEST(VmmArenaTest, PageIsNotStolenBeforeItsLastUseCompletes) {
  Rig rig(2, kGran, SimCompletion::kManual);
  constexpr StreamHandle kBusy = 1;
  ASSIGN_OR_FAIL(x, rig.pool().CreateArena(3 * kGran, kBusy));
  ASSIGN_OR_FAIL(y, rig.pool().CreateArena(2 * kGran, 2));
  const LiveRange kept{x, x->base(), kGran, 60};
  ASSERT_OK(rig.AcquireAndWrite(kept));
  ASSERT_OK(x->Acquire(x->base() + kGran, kGran));
  // A kernel still uses page 1 when it is released.
  const std::uint64_t kernel = rig.device().SubmitWork(kBusy);
  ASSERT_OK(x->Release(x->base() + kGran, kGran));
  EXPECT_TRUE(x->page(1).waiting);

  for (int attempt = 0; attempt < 3; ++attempt) {
    absl::Status s = y->Acquire(y->base(), kGran);
    ASSERT_TRUE(absl::IsResourceExhausted(s)) << s;
    EXPECT_THAT(s.message(), HasSubstr("still in use by their streams' work"));
    EXPECT_TRUE(x->page(1).mapped);
    EXPECT_EQ(y->live_pages(), 0u);
    ASSERT_TRUE(rig.Consistent());
  }
  // Reusing it in place needs no wait (same stream); when that fails for want of a chunk for
  // the next page, the page goes back to waiting on its mark.
  ASSERT_TRUE(absl::IsResourceExhausted(x->Acquire(x->base() + kGran, 2 * kGran)));
  EXPECT_TRUE(x->page(1).waiting);
  EXPECT_EQ(x->page(1).live, 0u);
  ASSERT_TRUE(rig.Consistent());
  // Trim does not take it either.
  ASSIGN_OR_FAIL(trimmed, rig.pool().Trim(kGran));
  EXPECT_EQ(trimmed, 0u);
  EXPECT_EQ(rig.pool().counters().stitches, 0u);
  EXPECT_EQ(rig.device().Calls(SimOp::kSynchronizeEvent), 0);
  EXPECT_EQ(rig.device().Calls(SimOp::kSynchronizeDevice), 0);

  ASSERT_OK(rig.device().CompleteWork(kBusy, kernel));
  const LiveRange moved{y, y->base(), kGran, 61};
  ASSERT_OK(rig.AcquireAndWrite(moved));
  EXPECT_EQ(rig.pool().counters().stitches, 1u);
  EXPECT_TRUE(x->page(1).alias);
  EXPECT_TRUE(rig.Intact(kept));
  EXPECT_TRUE(rig.Intact(moved));
  EXPECT_TRUE(rig.Consistent());
}

TEST(VmmArenaTest, NoEventIsQueriedWhileQueriesAreForbidden) {
  Rig rig(3, kGran, SimCompletion::kManual);
  ASSIGN_OR_FAIL(x, rig.pool().CreateArena(2 * kGran, 1));
  ASSIGN_OR_FAIL(y, rig.pool().CreateArena(2 * kGran, 2));
  ASSERT_OK(x->Acquire(x->base(), 2 * kGran));
  rig.device().SetCapturing(/*stream=*/9, true);  // the device now fails every query
  rig.pool().SetEventQueriesAllowed(false);
  ASSERT_OK(x->Release(x->base(), kGran));
  ASSERT_OK(x->Release(x->base() + kGran, kGran));
  ASSERT_OK(y->Acquire(y->base(), kGran));  // the device's last chunk
  absl::Status s = y->Acquire(y->base() + kGran, kGran);
  EXPECT_TRUE(absl::IsResourceExhausted(s)) << s;
  ASSIGN_OR_FAIL(trimmed, rig.pool().Trim(kGran));
  EXPECT_EQ(trimmed, 0u);
  EXPECT_EQ(rig.device().Calls(SimOp::kQueryEvent), 0);
  ASSERT_TRUE(rig.Consistent());

  rig.device().SetCapturing(9, false);
  rig.pool().SetEventQueriesAllowed(true);
  ASSERT_OK(y->Acquire(y->base() + kGran, kGran));
  EXPECT_EQ(rig.pool().counters().stitches, 1u);
  EXPECT_TRUE(rig.Consistent());
}

// MarkRule::kUnlessStreamCaptures: a release that would record a mark on a stream capturing a
// graph the pool was not told about records nothing and changes nothing (Unavailable); one that
// ends no page's last use does not ask. The answer settles the pool's pending probe of that
// stream, so its event queries in the same step ask the device no more.
TEST(VmmArenaTest, AReleaseRecordsNoMarkOnAStreamThatCaptures) {
  Rig rig(4, kGran, SimCompletion::kManual);
  ASSIGN_OR_FAIL(x, rig.pool().CreateArena(2 * kGran, /*stream=*/9));
  ASSERT_OK(x->Acquire(x->base(), kGran / 2));
  ASSERT_OK(x->Acquire(x->base() + kGran / 2, kGran / 2));  // the page's second use
  rig.device().SetCapturing(/*stream=*/9, true);
  rig.pool().SetEventQueriesAllowedUnlessCapturing(9);
  const std::int64_t asked = rig.device().Calls(SimOp::kIsCapturing);
  // Not the page's last use: counts down, records and asks nothing.
  ASSERT_OK(x->Release(x->base(), kGran / 2, false, VmmArena::MarkRule::kUnlessStreamCaptures));
  EXPECT_EQ(rig.device().Calls(SimOp::kIsCapturing), asked);
  // The last use: refused while the stream captures; the page stays in use.
  absl::Status s = x->Release(x->base() + kGran / 2, kGran / 2, false,
                              VmmArena::MarkRule::kUnlessStreamCaptures);
  EXPECT_TRUE(absl::IsUnavailable(s)) << s;
  EXPECT_EQ(rig.device().Calls(SimOp::kIsCapturing), asked + 1);
  EXPECT_EQ(rig.device().Calls(SimOp::kRecordEvent), 0);
  EXPECT_EQ(x->live_pages(), 1u);
  EXPECT_FALSE(rig.pool().event_queries_allowed());  // the probe took the answer
  EXPECT_TRUE(rig.Consistent());

  rig.device().SetCapturing(9, false);
  ASSERT_OK(x->Release(x->base() + kGran / 2, kGran / 2, false,
                       VmmArena::MarkRule::kUnlessStreamCaptures));
  EXPECT_EQ(rig.device().Calls(SimOp::kRecordEvent), 1);
  EXPECT_EQ(x->live_pages(), 0u);
  EXPECT_TRUE(rig.Consistent());
}

TEST(VmmArenaTest, BudgetHoldsAtEveryInstant) {
  Rig rig(64);
  rig.pool().SetBudget(4 * kGran);
  ASSIGN_OR_FAIL(x, rig.pool().CreateArena(8 * kGran, 1));
  ASSIGN_OR_FAIL(y, rig.pool().CreateArena(8 * kGran, 2));
  ASSERT_OK(x->Acquire(x->base(), 3 * kGran));
  // Needs 2 more pages, 1 fits: refused by arithmetic, and nothing is created or mapped.
  absl::Status s = y->Acquire(y->base(), 2 * kGran);
  ASSERT_TRUE(absl::IsResourceExhausted(s)) << s;
  EXPECT_THAT(s.message(), HasSubstr("budget"));
  EXPECT_THAT(s.message(), HasSubstr("2 page(s)"));
  EXPECT_EQ(y->live_pages(), 0u);
  EXPECT_EQ(rig.pool().held_bytes(), 3 * kGran);
  EXPECT_EQ(rig.pool().free_mapped_bytes(), 0u);
  EXPECT_EQ(rig.pool().counters().budget_refusals, 1u);
  EXPECT_EQ(rig.device().Calls(SimOp::kMap), 3);
  ASSERT_TRUE(rig.Consistent());
  // One page fits.
  ASSERT_OK(y->Acquire(y->base() + 5 * kGran, kGran));
  EXPECT_EQ(rig.pool().held_bytes(), 4 * kGran);
  // Released pages serve more.
  ASSERT_OK(x->Release(x->base(), 2 * kGran));
  ASSERT_OK(y->Acquire(y->base(), 2 * kGran));
  EXPECT_LE(rig.device().Counters().peak_held_bytes, 4 * kGran);
  // A budget below what is held stops growth but releases nothing; removing it allows growth.
  rig.pool().SetBudget(2 * kGran);
  EXPECT_TRUE(absl::IsResourceExhausted(y->Acquire(y->base() + 7 * kGran, kGran)));
  EXPECT_EQ(rig.pool().held_bytes(), 4 * kGran);
  rig.pool().SetBudget(0);
  ASSERT_OK(y->Acquire(y->base() + 7 * kGran, kGran));
  EXPECT_EQ(rig.pool().held_bytes(), 5 * kGran);
  EXPECT_TRUE(rig.Consistent());
}

TEST(VmmArenaTest, DeviceOutOfMemoryFallsBackToStealing) {
  Rig rig(3, kGran, SimCompletion::kAfterQueries);  // an event completes on its 2nd query
  ASSIGN_OR_FAIL(x, rig.pool().CreateArena(4 * kGran, 1));
  ASSIGN_OR_FAIL(y, rig.pool().CreateArena(4 * kGran, 2));
  const std::uint64_t kernel = rig.device().SubmitWork(1);
  (void)kernel;
  ASSERT_OK(x->Acquire(x->base(), 3 * kGran));
  rig.device().SubmitWork(1);
  ASSERT_OK(x->Release(x->base(), kGran));
  // The scan queries the mark once (not done), the device refuses a 4th chunk, the second scan
  // sees the mark complete: stolen.
  ASSERT_OK(y->Acquire(y->base(), kGran));
  EXPECT_EQ(rig.pool().counters().device_refusals, 1u);
  EXPECT_EQ(rig.pool().counters().stitches, 1u);
  EXPECT_EQ(rig.device().HeldBytes(), 3 * kGran);
  EXPECT_TRUE(rig.Consistent());
}

TEST(VmmArenaTest, DeviceFailuresLeakNothing) {
  Rig rig(4);
  rig.pool().SetAliasing(false);  // so that a stitch unmaps, and the unmap can fail
  ASSIGN_OR_FAIL(x, rig.pool().CreateArena(4 * kGran, 1));
  ASSIGN_OR_FAIL(y, rig.pool().CreateArena(4 * kGran, 2));

  // Map fails: the chunk the failed request created is released, not kept.
  rig.device().FailNext(SimOp::kMap, absl::InternalError("injected map failure"));
  absl::Status s = x->Acquire(x->base(), kGran);
  EXPECT_THAT(s.message(), HasSubstr("injected map failure"));
  EXPECT_EQ(x->live_pages(), 0u);
  EXPECT_EQ(rig.pool().cached_bytes(), 0u);
  EXPECT_EQ(rig.pool().held_bytes(), 0u);
  EXPECT_EQ(rig.pool().counters().chunks_released, 1u);
  ASSERT_TRUE(rig.Consistent());
  ASSERT_OK(x->Acquire(x->base(), 2 * kGran));
  EXPECT_EQ(rig.pool().counters().chunks_created, 3u);
  EXPECT_EQ(rig.pool().cached_bytes(), 0u);

  ASSERT_OK(x->Acquire(x->base() + 2 * kGran, 2 * kGran));  // the device is full now

  // Recording the free mark fails: the release did not happen.
  rig.device().FailNext(SimOp::kRecordEvent, absl::InternalError("injected record failure"));
  EXPECT_FALSE(x->Release(x->base(), kGran).ok());
  EXPECT_EQ(x->page(0).live, 1u);
  ASSERT_TRUE(rig.Consistent());
  ASSERT_OK(x->Release(x->base(), kGran));

  // Unmapping the page to steal fails: nothing moves; the page is still free to steal later.
  rig.device().FailNext(SimOp::kUnmap, absl::InternalError("injected unmap failure"));
  EXPECT_FALSE(y->Acquire(y->base(), kGran).ok());
  EXPECT_TRUE(x->page(0).mapped);
  ASSERT_TRUE(rig.Consistent());
  ASSERT_OK(y->Acquire(y->base(), kGran));
  EXPECT_FALSE(x->page(0).mapped);

  // A failure on the second page of a range undoes the first page's live count; its chunk
  // (stolen, held before the request) stays mapped as a ready page.
  ASSERT_OK(x->Release(x->base() + kGran, 3 * kGran));
  rig.device().FailAfter(SimOp::kMap, 1, absl::InternalError("injected second map failure"));
  EXPECT_FALSE(y->Acquire(y->base() + kGran, 2 * kGran).ok());
  EXPECT_EQ(y->page(1).live, 0u);
  EXPECT_EQ(y->page(2).live, 0u);
  EXPECT_EQ(rig.pool().held_bytes(), 4 * kGran);
  ASSERT_TRUE(rig.Consistent());
  ASSERT_OK(y->Acquire(y->base() + kGran, 3 * kGran));
  EXPECT_EQ(rig.pool().counters().chunks_created, 5u);
  EXPECT_TRUE(rig.Consistent());
}

TEST(VmmArenaTest, TrimReturnsFreeMemoryOldestFirst) {
  Rig rig(8);
  ASSIGN_OR_FAIL(x, rig.pool().CreateArena(8 * kGran, 1));
  const LiveRange kept{x, x->base() + 2 * kGran, 2 * kGran, 70};
  ASSERT_OK(x->Acquire(x->base(), 6 * kGran));
  ASSERT_OK(rig.Write(kept));
  ASSERT_OK(x->Release(x->base() + 5 * kGran, kGran));
  ASSERT_OK(x->Release(x->base(), 2 * kGran));
  ASSERT_OK(x->Release(x->base() + 4 * kGran, kGran));
  ASSIGN_OR_FAIL(first, rig.pool().Trim(kGran + 1));  // rounds up to whole pages
  EXPECT_EQ(first, 2 * kGran);
  EXPECT_FALSE(x->page(5).mapped);  // the oldest free page
  EXPECT_EQ(rig.device().HeldBytes(), 4 * kGran);
  EXPECT_TRUE(rig.Consistent());
  ASSIGN_OR_FAIL(rest, rig.pool().Trim(std::numeric_limits<std::size_t>::max()));
  EXPECT_EQ(rest, 2 * kGran);
  EXPECT_EQ(rig.pool().held_bytes(), 2 * kGran);
  EXPECT_EQ(rig.pool().counters().chunks_released, 4u);
  ASSIGN_OR_FAIL(nothing, rig.pool().Trim(kGran));
  EXPECT_EQ(nothing, 0u);
  EXPECT_TRUE(rig.Intact(kept));
  EXPECT_TRUE(rig.Consistent());
}

TEST(VmmArenaTest, ReleaseAllLeavesTheDeviceEmpty) {
  Rig rig(8, kGran, SimCompletion::kManual);
  ASSIGN_OR_FAIL(x, rig.pool().CreateArena(4 * kGran, 1));
  ASSIGN_OR_FAIL(y, rig.pool().CreateArena(4 * kGran, 2));
  ASSERT_OK(x->Acquire(x->base(), 3 * kGran));  // live
  rig.device().SubmitWork(1);
  ASSERT_OK(x->Release(x->base() + kGran, kGran));  // waiting
  ASSERT_OK(y->Acquire(y->base(), kGran));
  ASSERT_OK(y->Release(y->base(), kGran));
  rig.device().CompleteStream(2);
  ASSIGN_OR_FAIL(unmapped, rig.pool().UnmapFreePages());  // leaves a cached chunk
  EXPECT_EQ(unmapped, 1u);
  EXPECT_EQ(rig.pool().cached_bytes(), kGran);
  ASSERT_TRUE(rig.Consistent());

  ASSERT_OK(rig.pool().ReleaseAll());
  EXPECT_EQ(rig.device().HeldBytes(), 0u);
  EXPECT_EQ(rig.device().LiveMappings(), 0u);
  EXPECT_EQ(rig.device().LiveReservations(), 0u);
  EXPECT_EQ(rig.device().LiveChunks(), 0u);
  EXPECT_EQ(rig.device().LiveEvents(), 0u);
  EXPECT_EQ(rig.device().Counters().pending_work, 0u);  // the waiting page's work was awaited
  EXPECT_EQ(rig.pool().held_bytes(), 0u);
  EXPECT_EQ(rig.pool().arena_count(), 0u);
  EXPECT_TRUE(rig.Consistent());

  // Usable again.
  ASSIGN_OR_FAIL(z, rig.pool().CreateArena(2 * kGran, 3));
  const LiveRange r{z, z->base(), 2 * kGran, 80};
  ASSERT_OK(rig.AcquireAndWrite(r));
  EXPECT_TRUE(rig.Intact(r));
  ASSERT_OK(rig.pool().ReleaseAll());
  EXPECT_EQ(rig.device().HeldBytes(), 0u);
  EXPECT_EQ(rig.device().LiveReservations(), 0u);
}

TEST(VmmArenaTest, FreeMarksDoNotAccumulateEvents) {
  Rig rig(64);
  ASSIGN_OR_FAIL(x, rig.pool().CreateArena(64 * kGran, 1));
  // Every page is freed once and never reused in place: each Release needs a mark.
  for (std::size_t p = 0; p < 64; ++p) {
    ASSERT_OK(x->Acquire(x->base() + p * kGran, kGran));
    ASSERT_OK(x->Release(x->base() + p * kGran, kGran));
  }
  EXPECT_LE(rig.pool().counters().events_created, 2u);
  EXPECT_LE(rig.device().LiveEvents(), 2u);
  EXPECT_TRUE(rig.Consistent());
}

// Capacity C, filled with alternating 8 MiB and 4 MiB ranges; every 8 MiB one is released. No
// hole is larger than 8 MiB, yet a C/3 range fits: its pages are stitched from the holes.
TEST(VmmArenaTest, SwissCheeseIsServedByStitching) {
  constexpr std::size_t kCapacity = 48 * kMiB;
  Rig rig(kCapacity / kGran);
  ASSIGN_OR_FAIL(heap, rig.pool().CreateArena(kCapacity, 0));
  std::vector<LiveRange> small;
  std::vector<LiveRange> large;
  DevicePtr cursor = heap->base();
  for (std::uint64_t i = 0; cursor < heap->base() + kCapacity; ++i) {
    const LiveRange big{heap, cursor, 8 * kMiB, 1000 + i};
    const LiveRange little{heap, cursor + 8 * kMiB, 4 * kMiB, 2000 + i};
    ASSERT_OK(rig.AcquireAndWrite(big));
    ASSERT_OK(rig.AcquireAndWrite(little));
    large.push_back(big);
    small.push_back(little);
    cursor += 12 * kMiB;
  }
  EXPECT_EQ(rig.device().HeldBytes(), kCapacity);
  for (const LiveRange& r : large) ASSERT_OK(heap->Release(r.addr, r.bytes));

  ASSIGN_OR_FAIL(fresh, rig.pool().CreateArena(kCapacity / 3, 0));
  const LiveRange wide{fresh, fresh->base(), kCapacity / 3, 3000};
  ASSERT_OK(rig.AcquireAndWrite(wide));
  EXPECT_EQ(rig.pool().counters().stitches, kCapacity / 3 / kGran);
  EXPECT_EQ(rig.pool().counters().chunks_created, kCapacity / kGran);
  EXPECT_EQ(rig.device().HeldBytes(), kCapacity);
  EXPECT_TRUE(rig.AllIntact(small));
  EXPECT_TRUE(rig.Intact(wide));
  EXPECT_TRUE(rig.Consistent());
}

// Random acquires and releases (page-aligned and not) on three arenas and streams over a small
// device, with kernels pending on the streams at release time and completed at random: after
// every step the invariants hold, the pool agrees with the device, every live range's bytes are
// intact, and a refused Acquire changed no live count.
void RunRandomSeed(std::uint64_t seed, int steps) {
  constexpr std::size_t kPage = 4096;  // the smallest granularity: cheap data checks
  constexpr std::size_t kArenaPages = 16;
  constexpr std::size_t kCapacityPages = 20;
  Rig rig(kCapacityPages, kPage, SimCompletion::kManual);
  std::mt19937_64 rng(seed);
  std::vector<VmmArena*> arenas;
  for (StreamHandle stream = 1; stream <= 3; ++stream) {
    absl::StatusOr<VmmArena*> arena = rig.pool().CreateArena(kArenaPages * kPage, stream);
    ASSERT_TRUE(arena.ok()) << arena.status();
    arenas.push_back(*arena);
  }
  std::vector<LiveRange> live;
  auto overlaps = [&](const LiveRange& r) {
    return std::any_of(live.begin(), live.end(), [&](const LiveRange& l) {
      return l.addr < r.addr + r.bytes && r.addr < l.addr + l.bytes;
    });
  };
  auto live_counts = [&] {
    std::vector<std::uint32_t> counts;
    for (VmmArena* a : arenas) {
      for (std::size_t p = 0; p < a->page_count(); ++p) counts.push_back(a->page(p).live);
    }
    return counts;
  };
  for (int step = 0; step < steps; ++step) {
    const int op = static_cast<int>(rng() % 100);
    if (op < 50 || live.empty()) {
      VmmArena* arena = arenas[rng() % arenas.size()];
      LiveRange r{arena, 0, 0, rng()};
      if (rng() % 2 == 0) {
        const std::size_t first = rng() % kArenaPages;
        r.addr = arena->base() + first * kPage;
        r.bytes = (1 + rng() % std::min<std::size_t>(4, kArenaPages - first)) * kPage;
      } else {
        const std::size_t offset = (rng() % (kArenaPages * kPage / 256)) * 256;
        r.addr = arena->base() + offset;
        r.bytes = std::min<std::size_t>(256 * (1 + rng() % 64), kArenaPages * kPage - offset);
      }
      if (overlaps(r)) continue;
      const std::vector<std::uint32_t> before = live_counts();
      const std::size_t held_before = rig.pool().held_bytes();
      absl::Status s = r.arena->Acquire(r.addr, r.bytes);
      // Growth never passes the budget (a budget lowered below what is held stops growth).
      const std::size_t budget = rig.pool().budget();
      if (budget > 0 && rig.pool().held_bytes() > held_before) {
        ASSERT_LE(rig.pool().held_bytes(), budget) << "step " << step;
      }
      if (!s.ok()) {
        ASSERT_TRUE(absl::IsResourceExhausted(s)) << s;
        ASSERT_EQ(live_counts(), before) << "step " << step;
      } else {
        ASSERT_TRUE(rig.Write(r).ok());
        live.push_back(r);
      }
    } else if (op < 85) {
      const std::size_t index = rng() % live.size();
      const LiveRange r = live[index];
      ASSERT_TRUE(rig.Intact(r)) << "step " << step;
      // Sometimes a kernel still uses the range when it is released.
      if (rng() % 2 == 0) rig.device().SubmitWork(r.arena->stream());
      ASSERT_TRUE(r.arena->Release(r.addr, r.bytes).ok()) << "step " << step;
      live[index] = live.back();
      live.pop_back();
    } else if (op < 93) {
      rig.device().CompleteStream(arenas[rng() % arenas.size()]->stream());
    } else if (op < 96) {
      absl::StatusOr<std::size_t> trimmed = rig.pool().Trim((1 + rng() % 4) * kPage);
      ASSERT_TRUE(trimmed.ok()) << trimmed.status();
    } else {
      rig.pool().SetBudget(rng() % 2 == 0 ? 0 : (8 + rng() % 12) * kPage);
    }
    ASSERT_TRUE(rig.Consistent()) << "seed " << seed << " step " << step;
    ASSERT_TRUE(rig.AllIntact(live)) << "seed " << seed << " step " << step;
  }
  for (const LiveRange& r : live) ASSERT_TRUE(r.arena->Release(r.addr, r.bytes).ok());
  ASSERT_TRUE(rig.pool().ReleaseAll().ok());
  ASSERT_EQ(rig.device().HeldBytes(), 0u);
  ASSERT_EQ(rig.device().LiveReservations(), 0u);
}

TEST(VmmArenaTest, RandomizedAcquireRelease) {
  const int seeds = std::max(1, VRAMCACHE_RANDOM_SEEDS / 100);
  for (int seed = 1; seed <= seeds; ++seed) {
    ASSERT_NO_FATAL_FAILURE(RunRandomSeed(static_cast<std::uint64_t>(seed), 250))
        << "seed " << seed;
  }
}

}  // namespace
}  // namespace vramcache
