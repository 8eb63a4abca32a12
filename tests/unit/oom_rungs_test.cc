// The out-of-memory ladder's rungs against their interface, on the simulated device and the
// allocator's real components, with a host that hands blocks out plainly: segment mode's growth
// is counted in flight from its first step until the device allocation returns, then serves the
// request from the new segment; a block freed meanwhile is served without growing; the budget
// refuses growth before any device call; virtual memory grows in one step; the releases detach
// wholly free segments (and count them), trim chunks above a cap, and ask for a device
// synchronization only when pages wait for their last use; the report's facts are the state's,
// and the last rung counts the failure, keeps its report and hands the observers out.
#include "allocator/core/oom_rungs.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "allocator/core/block_heap.h"
#include "allocator/core/config.h"
#include "allocator/device/sim_device.h"
#include "gtest/gtest.h"

namespace vramcache {
namespace {

constexpr StreamHandle kStream = 7;
constexpr DevicePtr kBase = 0x40000000;

// Hands a block out as the facade would, without the reuse cache, the pointer map or the debug
// modes; counts what the rungs asked of it.
class PlainHost final : public OomRungs::Host {
 public:
  void Attach(BlockHeap* heap, Placement* placement, Backing* backing) {
    heap_ = heap;
    placement_ = placement;
    backing_ = backing;
  }
  void FlushReuseCache() override { ++flushes; }
  absl::StatusOr<void*> FinishAllocation(Block* block, const GrowthRequest& request) override {
    heap_->RemoveFreeBlock(block);
    if (placement_->ShouldSplit(block, request.rounded)) heap_->Split(block, request.rounded);
    if (absl::Status s = backing_->AcquirePages(block); !s.ok()) {
      heap_->CoalesceAndInsert(block);
      return s;
    }
    return MarkAllocated(block, request);
  }
  absl::StatusOr<void*> MarkAllocated(Block* block, const GrowthRequest& request) override {
    block->state = BlockState::kAllocated;
    block->rounded = request.rounded;
    block->requested = request.size;
    block->alloc_stream = request.stream;
    return reinterpret_cast<void*>(block->addr);
  }
  void Record(TraceAction action, DevicePtr, std::size_t, StreamHandle) override {
    recorded.push_back(action);
  }

  int flushes = 0;
  std::vector<TraceAction> recorded;

 private:
  BlockHeap* heap_ = nullptr;
  Placement* placement_ = nullptr;
  Backing* backing_ = nullptr;
};

class OomRungsTest : public ::testing::Test {
 protected:
  ~OomRungsTest() override {
    if (vmm_ != nullptr) {
      EXPECT_TRUE(vmm_->chunks().ReleaseAll().ok());
    }
    for (auto& [base, segment] : heap_->segments()) {
      heap_->ForgetSegmentBlocks(segment);
      delete segment;
    }
    heap_->Clear();
  }

  // Builds the components in segment mode, or in virtual-memory mode when `config.vmm` is on.
  void Make(const AllocatorConfig& config) {
    const bool virtual_memory = config.vmm == VmmMode::kOn;
    settings_ = RuntimeSettings::Of(config);
    limits_ = std::make_unique<GrowthLimits>(config, device_.Capabilities().total_bytes);
    heap_ = std::make_unique<BlockHeap>(&ledger_, virtual_memory);
    placement_ = std::make_unique<Placement>(heap_.get(), &settings_, virtual_memory);
    frees_ = std::make_unique<StreamOrderedFrees>(&device_, heap_.get(), &ledger_, [](Block*) {});
    Backing* backing = nullptr;
    if (virtual_memory) {
      vmm_ = std::make_unique<VmmBacking>(&device_, config, &ledger_, limits_->budget());
      backing = vmm_.get();
    } else {
      segments_ = std::make_unique<SegmentBacking>(&stats_, &ledger_, limits_.get(),
                                                   &heap_->small_free(), &heap_->large_free());
      backing = segments_.get();
    }
    host_.Attach(heap_.get(), placement_.get(), backing);
    rungs_ = std::make_unique<OomRungs>(OomRungs::Parts{
        .host = &host_,
        .heap = heap_.get(),
        .placement = placement_.get(),
        .ledger = &ledger_,
        .stats = &stats_,
        .limits = limits_.get(),
        .backing = backing,
        .vmm = vmm_.get(),
        .segments = segments_.get(),
        .graph_pools = &graph_pools_,
        .frees = frees_.get(),
        .settings = &settings_,
        .caching = config.caching,
        .single_use_ranges = virtual_memory && config.unmap_on_free,
    });
  }

  static AllocatorConfig Budget(std::size_t bytes) {
    AllocatorConfig config;
    config.budget_bytes = bytes;
    return config;
  }

  static GrowthRequest Request(std::size_t rounded) {
    return GrowthRequest{.size = rounded, .rounded = rounded, .stream = kStream};
  }

  // Segment mode: a segment of `bytes` at `base` grown for a request of all of it.
  Block* Grow(DevicePtr base, std::size_t bytes) {
    EXPECT_FALSE(rungs_->BeginGrowth(Request(bytes), bytes).has_value());
    rungs_->GrowthReturned(bytes);
    EXPECT_TRUE(rungs_->ServeFromNewSegment(base, bytes, Request(bytes)).ok());
    return heap_->segments().find(base)->second->head;
  }
  // The block is free again (back in the free sets).
  void Free(Block* block) { heap_->CoalesceAndInsert(block); }
  // Segment mode: a wholly free segment of `bytes` at `base`.
  void GrowAndFree(DevicePtr base, std::size_t bytes) { Free(Grow(base, bytes)); }
  // Segment mode: two wholly free segments of 2 MiB.
  void TwoFreeSegments() {
    Block* first = Grow(kBase, 2 * kMiB);
    Block* second = Grow(kBase + 2 * kMiB, 2 * kMiB);
    Free(first);
    Free(second);
  }

  // Deletes the segments a release detached (segment mode frees their memory on the device).
  void Delete(const std::vector<Segment*>& detached) {
    std::size_t bytes = 0;
    for (Segment* segment : detached) {
      bytes += segment->size;
      delete segment;
    }
    segments_->SegmentsFreed(static_cast<std::int64_t>(detached.size()), bytes);
  }

  SimDevice device_;
  DeviceStats stats_;
  StatsLedger ledger_{&stats_, /*max_split_size=*/SIZE_MAX};
  RuntimeSettings settings_;
  GraphPools graph_pools_{&device_};
  PlainHost host_;
  std::unique_ptr<GrowthLimits> limits_;
  std::unique_ptr<BlockHeap> heap_;
  std::unique_ptr<Placement> placement_;
  std::unique_ptr<StreamOrderedFrees> frees_;
  std::unique_ptr<VmmBacking> vmm_;
  std::unique_ptr<SegmentBacking> segments_;
  std::unique_ptr<OomRungs> rungs_;
};

TEST_F(OomRungsTest, SegmentGrowthIsInFlightUntilTheDeviceAllocationReturns) {
  Make(AllocatorConfig{});
  EXPECT_FALSE(rungs_->BeginGrowth(Request(2 * kMiB), 2 * kMiB).has_value());
  EXPECT_EQ(host_.flushes, 1);  // placement saw every free block first
  EXPECT_EQ(limits_->growing_bytes(), 2 * kMiB);
  rungs_->GrowthReturned(2 * kMiB);
  EXPECT_EQ(limits_->growing_bytes(), 0u);
  absl::StatusOr<void*> served = rungs_->ServeFromNewSegment(kBase, 2 * kMiB, Request(2 * kMiB));
  ASSERT_TRUE(served.ok()) << served.status();
  EXPECT_EQ(*served, reinterpret_cast<void*>(kBase));
  EXPECT_EQ(heap_->segments().size(), 1u);
  EXPECT_EQ(stats_.reserved_bytes.all().current, static_cast<std::int64_t>(2 * kMiB));
  EXPECT_EQ(host_.recorded, std::vector<TraceAction>{TraceAction::kSegmentAlloc});
}

TEST_F(OomRungsTest, ABlockFreedMeanwhileIsServedWithoutGrowing) {
  Make(AllocatorConfig{});
  GrowAndFree(kBase, 2 * kMiB);
  std::optional<absl::StatusOr<void*>> served = rungs_->BeginGrowth(Request(2 * kMiB), 2 * kMiB);
  ASSERT_TRUE(served.has_value());
  ASSERT_TRUE(served->ok()) << served->status();
  EXPECT_EQ(**served, reinterpret_cast<void*>(kBase));
  EXPECT_EQ(stats_.num_cache_hits, 1);
  EXPECT_EQ(limits_->growing_bytes(), 0u);
}

TEST_F(OomRungsTest, TheBudgetRefusesGrowthBeforeAnyDeviceCall) {
  Make(Budget(2 * kMiB));
  GrowAndFree(kBase, 2 * kMiB);
  // A 4 MiB request fits no cached block; 4 MiB more would pass the budget.
  std::optional<absl::StatusOr<void*>> refused = rungs_->BeginGrowth(Request(4 * kMiB), 4 * kMiB);
  ASSERT_TRUE(refused.has_value());
  EXPECT_TRUE(absl::IsResourceExhausted(refused->status())) << refused->status();
  EXPECT_EQ(limits_->growing_bytes(), 0u);
}

TEST_F(OomRungsTest, TheSecondRungDetachesEveryWhollyFreeSegmentAndCountsOneRelease) {
  Make(AllocatorConfig{});
  TwoFreeSegments();
  CacheRelease release = rungs_->ReleaseCached();
  EXPECT_FALSE(release.synchronize);  // segment mode frees; nothing to wait for
  EXPECT_EQ(release.detached.size(), 2u);
  EXPECT_TRUE(heap_->segments().empty());
  EXPECT_EQ(stats_.num_cache_releases, 1);
  EXPECT_EQ(stats_.reserved_bytes.all().current, 0);
  EXPECT_EQ(host_.recorded.back(), TraceAction::kSegmentFree);
  Delete(release.detached);
  // Nothing left: the next release detaches nothing and counts nothing.
  EXPECT_TRUE(rungs_->ReleaseCached().detached.empty());
  EXPECT_EQ(stats_.num_cache_releases, 1);
}

TEST_F(OomRungsTest, ACapReleasesOnlyWhatIsCachedAboveIt) {
  Make(AllocatorConfig{});
  TwoFreeSegments();
  std::vector<Segment*> detached = rungs_->ReleaseCachedAbove(3 * kMiB);
  EXPECT_EQ(detached.size(), 1u);  // one segment takes the held bytes under the cap
  EXPECT_EQ(heap_->segments().size(), 1u);
  Delete(detached);
  EXPECT_TRUE(rungs_->ReleaseCachedAbove(2 * kMiB).empty());
}

TEST_F(OomRungsTest, AReleasedPoolsSegmentsAreDetachedInSegmentMode) {
  Make(AllocatorConfig{});
  constexpr PoolId kPool = 9;
  graph_pools_.BeginCapture(kPool, nullptr);
  GrowthRequest request = Request(2 * kMiB);
  request.pool = kPool;
  EXPECT_FALSE(rungs_->BeginGrowth(request, 2 * kMiB).has_value());
  rungs_->GrowthReturned(2 * kMiB);
  ASSERT_TRUE(rungs_->ServeFromNewSegment(kBase, 2 * kMiB, request).ok());
  Free(heap_->segments().begin()->second->head);
  ASSERT_TRUE(graph_pools_.EndCapture(kPool).ok());
  // A live pool's free memory belongs to its graph: nothing goes back.
  EXPECT_TRUE(rungs_->ReleaseCached().detached.empty());
  ASSERT_TRUE(*graph_pools_.DropUse(kPool));
  CacheRelease release = rungs_->BeginPoolRelease(kPool);
  EXPECT_FALSE(release.synchronize);  // cudaFree waits for the replays' work itself
  EXPECT_EQ(release.detached.size(), 1u);
  Delete(release.detached);
}

TEST_F(OomRungsTest, AReleasedPoolWaitsForADeviceSynchronizationInVirtualMemory) {
  AllocatorConfig config;
  config.vmm = VmmMode::kOn;
  Make(config);
  constexpr PoolId kPool = 9;
  graph_pools_.BeginCapture(kPool, nullptr);
  ASSERT_TRUE(graph_pools_.EndCapture(kPool).ok());
  ASSERT_TRUE(*graph_pools_.DropUse(kPool));
  CacheRelease release = rungs_->BeginPoolRelease(kPool);
  EXPECT_TRUE(release.detached.empty());
  EXPECT_TRUE(release.synchronize);
  EXPECT_EQ(release.synced_through, frees_->newest_order());
  EXPECT_EQ(stats_.num_sync_all_streams, 1);
  EXPECT_EQ(graph_pools_.unsynced_pools().size(), 1u);
  rungs_->Synchronized(release.synced_through);
  EXPECT_TRUE(graph_pools_.unsynced_pools().empty());
}

TEST_F(OomRungsTest, TheReportsFactsAreTheState) {
  Make(Budget(64 * kMiB));
  GrowAndFree(kBase, 2 * kMiB);
  OomFacts facts;
  rungs_->GatherOomFacts(&facts);
  EXPECT_EQ(facts.reserved_bytes, 2 * kMiB);
  EXPECT_EQ(facts.cached_free_bytes, 2 * kMiB);
  EXPECT_EQ(facts.largest_free_block_bytes, 2 * kMiB);
  EXPECT_EQ(facts.pending_free_bytes, 0u);
  EXPECT_EQ(facts.budget_bytes, 64 * kMiB);
}

TEST_F(OomRungsTest, TheLastRungCountsKeepsTheReportAndHandsOutTheObservers) {
  Make(Budget(64 * kMiB));
  EXPECT_FALSE(rungs_->last_oom().has_value());
  int notified = 0;
  rungs_->AttachOomObserver(
      [&](int, std::size_t, std::size_t, std::size_t, std::size_t) { ++notified; });
  OomFacts facts;
  facts.requested_bytes = 80 * kMiB;
  facts.stream = kStream;
  const OomRungs::OutOfMemoryOutcome outcome = rungs_->OutOfMemory(facts);
  EXPECT_EQ(outcome.report.budget_bytes, 64 * kMiB);  // the state's facts joined the device's
  EXPECT_EQ(outcome.observers.size(), 1u);
  EXPECT_EQ(notified, 0);  // called by the facade, without the lock
  EXPECT_EQ(stats_.num_ooms, 1);
  EXPECT_EQ(host_.recorded.back(), TraceAction::kOom);
  ASSERT_TRUE(rungs_->last_oom().has_value());
  EXPECT_EQ(rungs_->last_oom()->requested_bytes, 80 * kMiB);
}

TEST_F(OomRungsTest, VirtualMemoryGrowsInOneStepAndEmptyCacheWaitsForFreedPages) {
  AllocatorConfig config;
  config.vmm = VmmMode::kOn;
  Make(config);
  std::optional<absl::StatusOr<void*>> served = rungs_->BeginGrowth(Request(4 * kMiB), 0);
  ASSERT_TRUE(served.has_value());  // no device allocation left to the facade
  ASSERT_TRUE(served->ok()) << served->status();
  EXPECT_EQ(heap_->segments().size(), 1u);
  EXPECT_EQ(vmm_->HeldBytes(), 4 * kMiB);
  // Freed: its pages keep their chunks until a release gives them back.
  Block* block = heap_->segments().begin()->second->head;
  vmm_->ReleasePages(block, StreamsNow{});
  block->state = BlockState::kFree;
  heap_->CoalesceAndInsert(block);
  CacheRelease release = rungs_->BeginEmptyCache();
  EXPECT_TRUE(release.detached.empty());  // the range stays reserved
  // The free mark of its pages was never seen complete: the facade synchronizes first.
  EXPECT_TRUE(release.synchronize);
  EXPECT_EQ(stats_.num_sync_all_streams, 1);
  ASSERT_TRUE(device_.SynchronizeDevice().ok());
  ASSERT_TRUE(rungs_->FinishEmptyCache(release).ok());
  EXPECT_EQ(vmm_->HeldBytes(), 0u);
  EXPECT_EQ(heap_->segments().size(), 1u);
}

}  // namespace
}  // namespace vramcache
