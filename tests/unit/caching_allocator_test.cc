// The caching allocator on the simulated device: reuse, split and coalesce, statistics with
// PyTorch's meanings, bad input, the growth ladder, budgets and record_stream.
#include "allocator/core/caching_allocator.h"

#include <memory>

#include "allocator/core/size_classes.h"
#include "allocator/device/sim_device.h"
#include "gtest/gtest.h"
#include "tests/support/allocator_fixture.h"

namespace vramcache {
namespace {

constexpr StreamHandle kStream = 0;
constexpr StreamHandle kOtherStream = 7;

class CachingAllocatorTest : public AllocatorTest<> {
 protected:
  void Make(std::size_t capacity = std::size_t{8} << 30, AllocatorConfig config = {},
            SimCompletion completion = SimCompletion::kImmediate) {
    AllocatorFixture::Make(SegmentModeSetup(capacity, config, completion));
  }
  // A device whose work completes only when the test says so.
  void MakeManual(CrossStreamPolicy policy = CrossStreamPolicy::kWait) {
    AllocatorConfig config;
    config.cross_stream = policy;
    Make(std::size_t{8} << 30, config, SimCompletion::kManual);
  }
  void SetUp() override { Make(); }
};

TEST_F(CachingAllocatorTest, ZeroSizeGivesNullWithoutError) {
  absl::StatusOr<void*> p = allocator->Allocate(0, kStream);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(*p, nullptr);
  EXPECT_EQ(allocator->GetStats().allocation.all().current, 0);
  EXPECT_TRUE(allocator->Free(nullptr).ok());
}

TEST_F(CachingAllocatorTest, FreedBlockIsReusedOnSameStream) {
  void* a = Alloc(1000);
  ASSERT_TRUE(allocator->Free(a).ok());
  void* b = Alloc(1000);
  EXPECT_EQ(a, b);
  const DeviceStats s = allocator->GetStats();
  EXPECT_EQ(s.num_device_alloc, 1);
  EXPECT_EQ(s.num_cache_hits, 1);
  ASSERT_TRUE(allocator->Free(b).ok());
}

TEST_F(CachingAllocatorTest, CrossStreamPolicyNoneNeverBorrows) {
  AllocatorConfig config;
  config.cross_stream = CrossStreamPolicy::kNone;
  Make(std::size_t{8} << 30, config);
  void* a = Alloc(1000, kStream);
  ASSERT_TRUE(allocator->Free(a).ok());
  void* b = Alloc(1000, kOtherStream);
  EXPECT_NE(a, b);
  EXPECT_EQ(allocator->GetStats().num_device_alloc, 2);
  EXPECT_EQ(allocator->GetStats().num_cross_stream_reuse, 0);
  ASSERT_TRUE(allocator->Free(b).ok());
}

TEST_F(CachingAllocatorTest, CrossStreamWaitBorrowsAndOrdersTheBorrower) {
  MakeManual(CrossStreamPolicy::kWait);
  void* a = Alloc(1000, kStream);
  device->SubmitWork(kStream);  // still running when the block is borrowed
  ASSERT_TRUE(allocator->Free(a).ok());
  const auto waits_before = device->Calls(SimOp::kStreamWaitEvent);
  void* b = Alloc(1000, kOtherStream);
  EXPECT_EQ(a, b);
  EXPECT_EQ(allocator->GetStats().num_cross_stream_reuse, 1);
  EXPECT_EQ(device->Calls(SimOp::kStreamWaitEvent), waits_before + 1);
  // Freed on the borrowing stream: an event on it guards the block before its owner reuses it.
  device->SubmitWork(kOtherStream);
  ASSERT_TRUE(allocator->Free(b).ok());
  void* c = Alloc(1000, kStream);
  EXPECT_NE(c, a) << "owner reused the block while the borrower's work was pending";
  device->CompleteAll();
  ASSERT_TRUE(allocator->Free(c).ok());
}

TEST_F(CachingAllocatorTest, CrossStreamQueryBorrowsOnlyCompletedBlocks) {
  MakeManual(CrossStreamPolicy::kQuery);
  constexpr std::size_t kSize = 30u << 20;  // one exact segment each: no remainders
  constexpr StreamHandle kThirdStream = 9;
  void* a = Alloc(kSize, kStream);
  device->SubmitWork(kStream);
  ASSERT_TRUE(allocator->Free(a).ok());
  void* b = Alloc(kSize, kOtherStream);
  EXPECT_NE(a, b) << "borrowed while the owner's work was pending";
  EXPECT_EQ(allocator->GetStats().num_cross_stream_reuse, 0);
  device->CompleteAll();
  void* c = Alloc(kSize, kThirdStream);
  EXPECT_EQ(c, a);
  EXPECT_EQ(allocator->GetStats().num_cross_stream_reuse, 1);
  ASSERT_TRUE(allocator->Free(b).ok());
  ASSERT_TRUE(allocator->Free(c).ok());
  device->CompleteAll();
}

TEST_F(CachingAllocatorTest, DestroyedStreamHandleReuseWaitsForOldWork) {
  MakeManual(CrossStreamPolicy::kNone);
  constexpr std::size_t kSize = 30u << 20;
  const StreamHandle old_stream = device->CreateStream();
  void* a = Alloc(kSize, old_stream);
  device->SubmitWork(old_stream);  // a kernel still using `a`
  ASSERT_TRUE(allocator->Free(a).ok());
  ASSERT_TRUE(allocator->StreamDestroyed(old_stream).ok());
  ASSERT_TRUE(device->DestroyStream(old_stream).ok());
  const StreamHandle new_stream = device->CreateStream();
  ASSERT_EQ(new_stream, old_stream) << "the simulated device reuses handle values like CUDA";
  void* b = Alloc(kSize, new_stream);
  EXPECT_NE(a, b) << "a new stream with the old handle got memory the old stream still uses";
  device->CompleteAll();
  void* c = Alloc(kSize, new_stream);
  EXPECT_EQ(c, a);
  ASSERT_TRUE(allocator->Free(b).ok());
  ASSERT_TRUE(allocator->Free(c).ok());
}

TEST_F(CachingAllocatorTest, CaptureDirectsAllocationsToPrivatePool) {
  const PoolId graph_pool = 42;
  void* before = Alloc(1000, kStream);
  ASSERT_TRUE(allocator->Free(before).ok());
  allocator->BeginAllocateToPool(graph_pool, [](StreamHandle s) { return s == kOtherStream; });
  void* in_graph = Alloc(1000, kOtherStream);
  EXPECT_NE(in_graph, before) << "a private pool must not take shared cached memory";
  void* outside = Alloc(1000, kStream);  // streams the filter rejects use the shared pool
  EXPECT_EQ(outside, before);
  ASSERT_TRUE(allocator->EndAllocateToPool(graph_pool).ok());
  ASSERT_TRUE(allocator->Free(in_graph).ok());
  // After the capture, the private pool's memory is not handed to anyone else...
  void* later = Alloc(1000, kOtherStream);
  EXPECT_NE(later, in_graph);
  // ...and survives empty_cache until the pool is released.
  ASSERT_TRUE(allocator->EmptyCache().ok());
  EXPECT_EQ(allocator->GetStats().segment.all().current, 2);
  ASSERT_TRUE(allocator->ReleasePool(graph_pool).ok());
  EXPECT_EQ(allocator->GetStats().segment.all().current, 1);
  EXPECT_FALSE(allocator->ReleasePool(graph_pool).ok());
  EXPECT_FALSE(allocator->EndAllocateToPool(graph_pool).ok());
  ASSERT_TRUE(allocator->Free(outside).ok());
  ASSERT_TRUE(allocator->Free(later).ok());
}

TEST_F(CachingAllocatorTest, CaptureNeverQueriesEventsAndDefersCrossStreamFrees) {
  MakeManual();
  void* a = Alloc(1000, kStream);
  ASSERT_TRUE(allocator->RecordStream(a, kOtherStream).ok());
  ASSERT_TRUE(allocator->Free(a).ok());  // pending on an event
  device->SetCapturing(kStream, true);   // the simulated device fails any query now
  allocator->BeginAllocateToPool(1, nullptr);
  void* b = Alloc(1000, kStream);
  ASSERT_NE(b, nullptr);
  ASSERT_TRUE(allocator->RecordStream(b, kOtherStream).ok());
  const auto records_before = device->Calls(SimOp::kRecordEvent);
  ASSERT_TRUE(allocator->Free(b).ok());
  EXPECT_EQ(device->Calls(SimOp::kRecordEvent), records_before) << "event recorded in capture";
  device->SetCapturing(kStream, false);
  ASSERT_TRUE(allocator->EndAllocateToPool(1).ok());
  EXPECT_EQ(device->Calls(SimOp::kRecordEvent), records_before + 1);
  device->CompleteAll();
  ASSERT_TRUE(allocator->ReleasePool(1).ok());
}

TEST_F(CachingAllocatorTest, StatisticsFollowPyTorchMeanings) {
  AllocatorConfig config;
  config.reuse_cache_bytes = 0;  // coalesce at once, as PyTorch does
  Make(std::size_t{8} << 30, config);
  void* a = Alloc(1000);      // small pool, class 1024
  void* b = Alloc(3u << 20);  // large pool, 20 MiB segment
  DeviceStats s = allocator->GetStats();
  EXPECT_EQ(s.allocated_bytes.all().current, 1024 + (3 << 20));
  EXPECT_EQ(s.requested_bytes.all().current, 1000 + (3 << 20));
  EXPECT_EQ(s.reserved_bytes.all().current, (2 << 20) + (20 << 20));
  EXPECT_EQ(s.reserved_bytes.by_pool[1].current, 2 << 20);
  EXPECT_EQ(s.reserved_bytes.by_pool[2].current, 20 << 20);
  EXPECT_EQ(s.segment.all().current, 2);
  EXPECT_EQ(s.allocation.all().current, 2);
  // The rest of each segment is an inactive split block.
  EXPECT_EQ(s.inactive_split.all().current, 2);
  EXPECT_EQ(s.inactive_split_bytes.all().current, (2 << 20) - 1024 + (17 << 20));
  EXPECT_EQ(s.active_bytes.all().current, s.allocated_bytes.all().current);

  ASSERT_TRUE(allocator->Free(b).ok());
  s = allocator->GetStats();
  EXPECT_EQ(s.allocated_bytes.all().current, 1024);
  EXPECT_EQ(s.allocated_bytes.all().peak, 1024 + (3 << 20));
  EXPECT_EQ(s.allocated_bytes.all().allocated, 1024 + (3 << 20));
  EXPECT_EQ(s.allocated_bytes.all().freed(), 3 << 20);
  EXPECT_EQ(s.inactive_split.by_pool[2].current, 0);  // coalesced back to a whole segment

  allocator->ResetPeakStats();
  EXPECT_EQ(allocator->GetStats().allocated_bytes.all().peak, 1024);
  allocator->ResetAccumulatedStats();
  s = allocator->GetStats();
  EXPECT_EQ(s.allocated_bytes.all().allocated, 0);
  EXPECT_EQ(s.allocated_bytes.all().freed(), 0);
  EXPECT_EQ(s.num_device_alloc, 0);
  EXPECT_EQ(s.allocated_bytes.all().current, 1024);
  ASSERT_TRUE(allocator->Free(a).ok());
}

TEST_F(CachingAllocatorTest, SplitBlocksCoalesceOnFree) {
  AllocatorConfig config;
  config.reuse_cache_bytes = 0;
  Make(std::size_t{8} << 30, config);
  void* a = Alloc(4096);
  void* b = Alloc(4096);
  void* c = Alloc(4096);
  EXPECT_EQ(static_cast<char*>(b) - static_cast<char*>(a), 4096);
  ASSERT_TRUE(allocator->Free(b).ok());
  ASSERT_TRUE(allocator->Free(a).ok());
  ASSERT_TRUE(allocator->Free(c).ok());
  std::vector<SegmentInfo> segments = allocator->Snapshot();
  ASSERT_EQ(segments.size(), 1u);
  ASSERT_EQ(segments[0].blocks.size(), 1u);
  EXPECT_EQ(segments[0].blocks[0].size, kSmallSegmentSize);
}

TEST_F(CachingAllocatorTest, ReuseCacheServesSameSizeAndCoalescesOnMiss) {
  void* a = Alloc(4096);
  void* b = Alloc(4096);
  ASSERT_TRUE(allocator->Free(a).ok());
  ASSERT_TRUE(allocator->Free(b).ok());
  // Both freed blocks wait whole; the segment is not coalesced yet.
  ASSERT_EQ(allocator->Snapshot()[0].blocks.size(), 3u);
  EXPECT_EQ(allocator->GetStats().inactive_split.all().current, 3);
  EXPECT_EQ(allocator->GetStats().active.all().current, 0);
  void* c = Alloc(4000);  // same size class: served from the reuse cache, last freed first
  EXPECT_EQ(c, b);
  ASSERT_TRUE(allocator->Free(c).ok());
  // A size no cached block served is taken from the coalesced remainder.
  void* d = Alloc(1u << 20);
  ASSERT_NE(d, nullptr);
  ASSERT_TRUE(allocator->Free(d).ok());
  // EmptyCache coalesces everything first and returns the now wholly free segment.
  ASSERT_TRUE(allocator->EmptyCache().ok());
  EXPECT_EQ(allocator->GetStats().reserved_bytes.all().current, 0);
  EXPECT_EQ(allocator->GetStats().num_device_alloc, 1);
}

TEST_F(CachingAllocatorTest, UnknownAndDoubleFreeAreErrorsThatChangeNothing) {
  void* a = Alloc(5000);
  const DeviceStats before = allocator->GetStats();
  int local = 0;
  absl::Status unknown = allocator->Free(&local);
  EXPECT_TRUE(absl::IsInvalidArgument(unknown));
  EXPECT_NE(unknown.message().find("never allocated by vramcache"), std::string::npos) << unknown;
  absl::Status interior = allocator->Free(static_cast<char*>(a) + 512);
  EXPECT_TRUE(absl::IsInvalidArgument(interior));
  EXPECT_NE(interior.message().find("double free"), std::string::npos) << interior;
  EXPECT_EQ(allocator->GetStats().ToJson(), before.ToJson());
  ASSERT_TRUE(allocator->Free(a).ok());
  absl::Status twice = allocator->Free(a);
  EXPECT_TRUE(absl::IsInvalidArgument(twice));
  EXPECT_NE(twice.message().find("double free"), std::string::npos) << twice;
}

TEST_F(CachingAllocatorTest, AbsurdSizeIsInvalidArgument) {
  absl::StatusOr<void*> p = allocator->Allocate(std::size_t{1} << 63, kStream);
  EXPECT_TRUE(absl::IsInvalidArgument(p.status())) << p.status();
  p = allocator->Allocate(SIZE_MAX, kStream);
  EXPECT_TRUE(absl::IsInvalidArgument(p.status())) << p.status();
  EXPECT_EQ(allocator->GetStats().num_ooms, 0);
  EXPECT_EQ(device->HeldBytes(), 0u);
}

TEST_F(CachingAllocatorTest, EmptyCacheReturnsUnusedSegments) {
  void* a = Alloc(100);
  void* b = Alloc(50u << 20);
  ASSERT_TRUE(allocator->Free(b).ok());
  ASSERT_TRUE(allocator->EmptyCache().ok());
  DeviceStats s = allocator->GetStats();
  EXPECT_EQ(s.reserved_bytes.all().current, 2 << 20);  // the small segment is still in use
  EXPECT_EQ(s.num_device_free, 1);
  EXPECT_EQ(device->HeldBytes(), 2u << 20);
  ASSERT_TRUE(allocator->Free(a).ok());
  ASSERT_TRUE(allocator->EmptyCache().ok());
  EXPECT_EQ(allocator->GetStats().reserved_bytes.all().current, 0);
  EXPECT_EQ(device->HeldBytes(), 0u);
}

TEST_F(CachingAllocatorTest, ShutdownReturnsEverythingIncludingLiveBlocks) {
  Alloc(100);
  Alloc(30u << 20);
  ASSERT_TRUE(allocator->Shutdown().ok());
  EXPECT_EQ(device->HeldBytes(), 0u);
  EXPECT_TRUE(absl::IsFailedPrecondition(allocator->Allocate(10, kStream).status()));
  const DeviceStats s = allocator->GetStats();
  EXPECT_EQ(s.allocated_bytes.all().current, 0);
  EXPECT_EQ(s.reserved_bytes.all().current, 0);
}

TEST_F(CachingAllocatorTest, CachedSegmentsAreReleasedBeforeOutOfMemory) {
  Make(64u << 20);
  void* a = Alloc(40u << 20);
  ASSERT_TRUE(allocator->Free(a).ok());
  // 40 MiB cached; a 50 MiB request cannot fit beside it on a 64 MiB card.
  void* b = Alloc(50u << 20);
  ASSERT_NE(b, nullptr);
  const DeviceStats s = allocator->GetStats();
  EXPECT_EQ(s.num_alloc_retries, 1);
  EXPECT_EQ(s.num_cache_releases, 1);
  EXPECT_EQ(s.num_ooms, 0);
  ASSERT_TRUE(allocator->Free(b).ok());
}

TEST_F(CachingAllocatorTest, MidSizedRequestFallsBackToTightSegment) {
  Make(16u << 20);
  // A 5 MiB request prefers a 20 MiB segment, which does not fit on a 16 MiB card.
  void* a = Alloc(5u << 20);
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(allocator->GetStats().reserved_bytes.all().current, 6 << 20);
  ASSERT_TRUE(allocator->Free(a).ok());
}

TEST_F(CachingAllocatorTest, OutOfMemoryExplainsItselfAndRecovers) {
  Make(64u << 20);
  void* a = Alloc(40u << 20);
  absl::StatusOr<void*> big = allocator->Allocate(30u << 20, kStream);
  ASSERT_TRUE(absl::IsResourceExhausted(big.status())) << big.status();
  const std::string message(big.status().message());
  EXPECT_NE(message.find("CUDA out of memory. Tried to allocate 30.00 MiB"), std::string::npos)
      << message;
  EXPECT_NE(message.find("40.00 MiB is allocated by vramcache"), std::string::npos) << message;
  EXPECT_NE(message.find("Verdict:"), std::string::npos) << message;
  EXPECT_EQ(allocator->GetStats().num_ooms, 1);
  ASSERT_TRUE(allocator->LastOom().has_value());
  EXPECT_EQ(allocator->LastOom()->requested_bytes, 30u << 20);
  ASSERT_TRUE(allocator->Free(a).ok());
  void* b = Alloc(30u << 20);
  EXPECT_NE(b, nullptr);
  ASSERT_TRUE(allocator->Free(b).ok());
}

TEST_F(CachingAllocatorTest, BudgetCapsReservedBytes) {
  AllocatorConfig config;
  config.budget_bytes = 32u << 20;
  Make(std::size_t{8} << 30, config);
  void* a = Alloc(20u << 20);
  absl::StatusOr<void*> b = allocator->Allocate(20u << 20, kStream);
  ASSERT_TRUE(absl::IsResourceExhausted(b.status()));
  EXPECT_LE(allocator->GetStats().reserved_bytes.all().peak, 32 << 20);
  ASSERT_TRUE(allocator->LastOom().has_value());
  EXPECT_EQ(allocator->LastOom()->verdict, OomVerdict::kBudgetReached);
  ASSERT_TRUE(allocator->Free(a).ok());
}

TEST_F(CachingAllocatorTest, DeviceFailureOtherThanOomPropagatesAndChangesNothing) {
  device->FailNext(SimOp::kMalloc, absl::InternalError("injected: device lost"));
  absl::StatusOr<void*> p = allocator->Allocate(1000, kStream);
  ASSERT_FALSE(p.ok());
  EXPECT_TRUE(absl::IsInternal(p.status())) << p.status();
  EXPECT_EQ(allocator->GetStats().reserved_bytes.all().current, 0);
  EXPECT_EQ(allocator->GetStats().num_ooms, 0);
  void* q = Alloc(1000);
  ASSERT_TRUE(allocator->Free(q).ok());
}

TEST_F(CachingAllocatorTest, MaxSplitSizeKeepsOversizeBlocksForOversizeRequests) {
  AllocatorConfig config;
  config.max_split_size = 64u << 20;
  Make(std::size_t{8} << 30, config);
  void* big = Alloc(100u << 20);
  ASSERT_TRUE(allocator->Free(big).ok());
  // A small large-pool request must not carve up the oversize block.
  void* mid = Alloc(4u << 20);
  EXPECT_NE(mid, big);
  DeviceStats s = allocator->GetStats();
  EXPECT_EQ(s.oversize_segments.current, 1);
  // An oversize request close in size reuses it whole.
  void* big2 = Alloc(90u << 20);
  EXPECT_EQ(big2, big);
  EXPECT_EQ(allocator->GetStats().oversize_allocations.current, 1);
  ASSERT_TRUE(allocator->Free(mid).ok());
  ASSERT_TRUE(allocator->Free(big2).ok());
}

TEST_F(CachingAllocatorTest, RecordStreamDefersReuseUntilOtherStreamIsDone) {
  MakeManual();

  void* a = Alloc(1u << 20, kStream);
  ASSERT_TRUE(allocator->RecordStream(a, kStream).ok());  // own stream: no-op
  ASSERT_TRUE(allocator->RecordStream(a, kOtherStream).ok());
  device->SubmitWork(kOtherStream);  // a kernel on the other stream still reads `a`
  ASSERT_TRUE(allocator->Free(a).ok());
  void* b = Alloc(1u << 20, kStream);
  EXPECT_NE(a, b) << "reused while another stream's work was pending";
  EXPECT_EQ(allocator->GetStats().active.all().current, 2);
  device->CompleteAll();
  ASSERT_TRUE(allocator->Free(b).ok());
  void* c = Alloc(1u << 20, kStream);
  EXPECT_TRUE(c == a || c == b);
  EXPECT_EQ(allocator->GetStats().active.all().current, 1);
  ASSERT_TRUE(allocator->Free(c).ok());
}

TEST_F(CachingAllocatorTest, EmptyCacheWaitsForPendingFrees) {
  MakeManual();
  void* a = Alloc(3u << 20, kStream);
  ASSERT_TRUE(allocator->RecordStream(a, kOtherStream).ok());
  device->SubmitWork(kOtherStream);
  ASSERT_TRUE(allocator->Free(a).ok());
  ASSERT_TRUE(allocator->EmptyCache().ok());
  const DeviceStats s = allocator->GetStats();
  EXPECT_EQ(s.num_sync_all_streams, 1);
  EXPECT_EQ(s.reserved_bytes.all().current, 0);
}

TEST_F(CachingAllocatorTest, HistoryRecordsPyTorchActions) {
  AllocatorConfig config;
  config.record_history = true;
  Make(std::size_t{8} << 30, config);
  void* a = Alloc(1000);
  ASSERT_TRUE(allocator->Free(a).ok());
  std::vector<TraceEntry> history = allocator->History();
  ASSERT_EQ(history.size(), 4u);
  EXPECT_EQ(history[0].action, TraceAction::kSegmentAlloc);
  EXPECT_EQ(history[1].action, TraceAction::kAlloc);
  EXPECT_EQ(history[2].action, TraceAction::kFreeRequested);
  EXPECT_EQ(history[3].action, TraceAction::kFreeCompleted);
}

}  // namespace
}  // namespace vramcache
