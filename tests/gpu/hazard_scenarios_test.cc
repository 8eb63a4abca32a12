// Issue #14's stream-ordering scenarios a, b, c and e on a real GPU (their simulated-device
// versions are tests/unit/hazard_regression_test.cc). In each, a spin kernel (tests/gpu/support/
// spin_kernel.h) holds a block on a stream and writes it only when released, about
// kSpinFor after the scenario starts; the allocator acts meanwhile. Two things expose an unsafe
// choice, whichever the allocator makes:
//   - an unmap or release under the spinning kernel makes its late write fault: a sticky
//     cudaErrorIllegalAddress that every later synchronization reports;
//   - a block handed early to new work gets that work's pattern first and the spin kernel's
//     late pattern over it, so it does not hold what its new owner wrote.
// Each test also fails when the scenario was not exercised: the kernel already done when the
// allocator began to act (where a safe allocator could not have waited for it first), or the
// layout or synchronization the scenario relies on not there. tests/gpu/run.sh runs this binary
// plainly and under compute-sanitizer's memcheck. Skips without a GPU (and the virtual-memory cases
// without VMM support).
#include <cuda_runtime_api.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "allocator/core/caching_allocator.h"
#include "allocator/device/cuda_device.h"
#include "gtest/gtest.h"
#include "kernels/canary.h"
#include "kernels/fill.h"
#include "tests/gpu/support/spin_kernel.h"
#include "tests/gpu/support/spin_release.h"
#include "tests/gpu/support/sync_hooked_device.h"
#include "tests/support/graph_capture_filter.h"

namespace vramcache {
namespace {

using gpu_scenarios::SpinRelease;
using gpu_scenarios::SyncHookedDevice;

constexpr std::size_t kMiB = std::size_t{1} << 20;
// Long enough that every allocator call of a scenario runs while the kernel spins (they take
// microseconds, milliseconds under compute-sanitizer), short enough for the whole binary to
// stay within run.sh's timeout under the sanitizer.
constexpr std::chrono::milliseconds kSpinFor{1500};
// The kernel's own limit if the release never comes (a test that failed half-way): about 10 s
// at 2 GHz, so no failure hangs the run.
constexpr std::uint64_t kSpinCycleLimit = 20'000'000'000ull;
constexpr std::uint32_t kSpinPattern = 0x5AA5C33Cu;   // what the spinning kernel writes, late
constexpr std::uint32_t kOwnerPattern = 0x0F1E2D3Cu;  // what the block's next owner writes

class GpuHazardScenarioTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (CudaDeviceCount() == 0) GTEST_SKIP() << "no CUDA device";
    absl::StatusOr<std::unique_ptr<CudaDevice>> device = CudaDevice::Open(0);
    ASSERT_TRUE(device.ok()) << device.status();
    device_ = std::move(*device);
    hooked_ = std::make_unique<SyncHookedDevice>(device_.get());
    ASSERT_EQ(cudaSetDevice(0), cudaSuccess);
    ASSERT_EQ(cudaStreamCreateWithFlags(&s1_, cudaStreamNonBlocking), cudaSuccess);
    ASSERT_EQ(cudaStreamCreateWithFlags(&s2_, cudaStreamNonBlocking), cudaSuccess);
    // Loaded now: a lazy module load at first launch waits for the spinning kernel.
    ASSERT_EQ(gpu_scenarios::LoadSpinKernel(), cudaSuccess);
    ASSERT_EQ(kernels::LoadFillKernels(), cudaSuccess);
    ASSERT_EQ(kernels::LoadVerifyKernel(), cudaSuccess);
    release_ = std::make_unique<SpinRelease>();
    ASSERT_TRUE(release_->ok()) << "cudaHostAlloc(mapped) failed";
  }
  void TearDown() override {
    if (device_ == nullptr) return;
    if (release_ != nullptr) release_->ReleaseNow();
    cudaDeviceSynchronize();
    if (allocator_ != nullptr) {
      EXPECT_TRUE(allocator_->Shutdown().ok());
    }
    release_.reset();
    cudaStreamDestroy(s1_);
    cudaStreamDestroy(s2_);
  }

  // False (the test skips) when the mode needs virtual memory the GPU lacks.
  bool Make(VmmMode mode) {
    if (mode == VmmMode::kOn && !device_->Capabilities().vmm_supported) return false;
    AllocatorConfig config;
    config.vmm = mode;
    allocator_ = std::make_unique<CachingAllocator>(hooked_.get(), config, &clock_);
    return true;
  }
  static StreamHandle H(cudaStream_t s) { return reinterpret_cast<StreamHandle>(s); }

  void* Alloc(std::size_t bytes, cudaStream_t stream) {
    absl::StatusOr<void*> p = allocator_->Allocate(bytes, H(stream));
    EXPECT_TRUE(p.ok()) << p.status();
    return p.ok() ? *p : nullptr;
  }
  // The spinning kernel: holds `stream` until released (kSpinFor after the first launch), then
  // writes kSpinPattern over [p, p + bytes).
  void Spin(void* p, std::size_t bytes, cudaStream_t stream) {
    ASSERT_EQ(gpu_scenarios::LaunchSpinThenFill(p, bytes, kSpinPattern, release_->device_flag(),
                                                kSpinCycleLimit,
                                                reinterpret_cast<std::uintptr_t>(stream)),
              cudaSuccess);
    release_->ReleaseAfter(kSpinFor);
  }
  void Fill(void* p, std::size_t bytes, std::uint32_t pattern, cudaStream_t stream) {
    ASSERT_EQ(
        kernels::LaunchFillPattern32(p, bytes, pattern, reinterpret_cast<std::uintptr_t>(stream)),
        cudaSuccess);
  }
  // `to` runs after everything `from` ran so far (the user's own fork).
  void Order(cudaStream_t from, cudaStream_t to) {
    cudaEvent_t event;
    ASSERT_EQ(cudaEventCreateWithFlags(&event, cudaEventDisableTiming), cudaSuccess);
    ASSERT_EQ(cudaEventRecord(event, from), cudaSuccess);
    ASSERT_EQ(cudaStreamWaitEvent(to, event, 0), cudaSuccess);
    ASSERT_EQ(cudaEventDestroy(event), cudaSuccess);
  }
  // The scenario proves something only if the spin kernel on `stream` has not finished yet.
  void ExpectStillSpinning(cudaStream_t stream, const char* when) {
    EXPECT_EQ(cudaStreamQuery(stream), cudaErrorNotReady)
        << "the spin kernel had finished " << when << "; the scenario was not exercised";
  }
  // No sticky error (an unmap under the spinning kernel shows here as
  // cudaErrorIllegalAddress), and [p, p + bytes) holds `pattern`.
  void ExpectHolds(const void* p, std::size_t bytes, std::uint32_t pattern, const char* what) {
    const cudaError_t synchronized = cudaDeviceSynchronize();
    ASSERT_EQ(synchronized, cudaSuccess) << cudaGetErrorName(synchronized);
    kernels::PatternRange range{p, bytes, pattern};
    kernels::PatternRangeResult result;
    ASSERT_EQ(kernels::VerifyPatterns32(&range, 1, &result, 0, nullptr), cudaSuccess);
    EXPECT_TRUE(result.intact) << what << ": " << result.differing_bytes
                               << " bytes overwritten, the first at offset " << result.first_offset
                               << " (0x" << std::hex << int{result.found} << ")";
  }

  TickClock clock_;
  std::unique_ptr<CudaDevice> device_;
  std::unique_ptr<SyncHookedDevice> hooked_;
  std::unique_ptr<CachingAllocator> allocator_;
  std::unique_ptr<SpinRelease> release_;
  cudaStream_t s1_ = nullptr, s2_ = nullptr;
};

// a. A stitch's old holder (an alias) whose last use still runs is not unmapped before that use
// completed. x's chunk is stitched into z, K (spinning) writes z, z is freed, w claims x's chunk
// back on the same stream, and v lands on z's pages, one of them an alias of the busy chunk.
// Unsafe: the alias is unmapped under K, K's late write faults (sticky error in ExpectHolds),
// and the stream is still busy when Allocate returns.
TEST_F(GpuHazardScenarioTest, AStitchedAliasIsNotUnmappedUnderItsLastKernel) {
  if (!Make(VmmMode::kOn)) GTEST_SKIP() << "no virtual-memory support";
  if (device_->Capabilities().granularity != 2 * kMiB) {
    GTEST_SKIP() << "the layout below assumes a 2 MiB granularity";
  }
  void* x = Alloc(2 * kMiB, s1_);
  void* y = Alloc(2 * kMiB, s1_);
  ASSERT_TRUE(allocator_->Free(x).ok());
  ASSERT_EQ(cudaStreamSynchronize(s1_), cudaSuccess);  // idle: x's free mark completes
  void* z = Alloc(4 * kMiB, s1_);                      // stitches x's chunk
  Spin(z, 4 * kMiB, s1_);                              // K
  ASSERT_TRUE(allocator_->Free(z).ok());
  void* w = Alloc(2 * kMiB, s1_);
  EXPECT_EQ(w, x) << "w did not claim x's page back; the scenario was not exercised";
  ExpectStillSpinning(s1_, "before v was placed");
  void* v = Alloc(4 * kMiB, s1_);
  EXPECT_EQ(v, z) << "v did not land on z's pages; the scenario was not exercised";
  // The allocator waited for K before it unmapped the alias: nothing is left on the stream.
  EXPECT_EQ(cudaStreamQuery(s1_), cudaSuccess) << "v's placement returned while K still ran";
  Fill(v, 4 * kMiB, kOwnerPattern, s1_);
  ExpectHolds(v, 4 * kMiB, kOwnerPattern, "v");
  for (void* p : {y, w, v}) ASSERT_TRUE(allocator_->Free(p).ok());
}

// b. A synchronization of pending frees (EmptyCache) completes only the frees that existed
// when it began. While it waits in SynchronizeDevice (lock dropped), "another thread" writes
// `late` on s2 with the spin kernel, record_streams it there and frees it. Unsafe: EmptyCache
// takes that free as complete, so in VMM mode it unmaps `late` under the kernel (sticky
// error), and in either mode the next allocation gets `late`'s memory, whose owner pattern the
// kernel's late write then overwrites.
class GpuPendingFreeScenarioTest : public GpuHazardScenarioTest {
 protected:
  void Run(VmmMode mode) {
    if (!Make(mode)) GTEST_SKIP() << "no virtual-memory support";
    // `early` is pending too, so that EmptyCache has frees to synchronize. It is small and
    // shares its segment with `keeper`, which stays live: EmptyCache then has no segment to
    // cudaFree, whose implicit device synchronization would wait for the spin kernel and hide
    // the scenario.
    void* early = Alloc(512 * 1024, s1_);
    void* keeper = Alloc(512 * 1024, s1_);
    void* late = Alloc(32 * kMiB, s1_);
    Fill(late, 32 * kMiB, 0, s1_);  // the user's own first use, on the allocating stream
    Order(s1_, s2_);
    Fill(early, 512 * 1024, 0, s2_);
    ASSERT_TRUE(allocator_->RecordStream(early, H(s2_)).ok());
    ASSERT_TRUE(allocator_->Free(early).ok());
    bool hook_ran = false;
    FreeUnderSpinAfterNextSync(late, 32 * kMiB, &hook_ran);
    ASSERT_TRUE(allocator_->EmptyCache().ok());
    ASSERT_TRUE(hook_ran) << "EmptyCache did not synchronize; the scenario was not exercised";
    // EmptyCache synchronizes once, before the hook; were the kernel done here, nothing below
    // would be tested.
    ExpectStillSpinning(s2_, "when EmptyCache returned");
    void* next = Alloc(32 * kMiB, s1_);
    Fill(next, 32 * kMiB, kOwnerPattern, s1_);
    ExpectHolds(next, 32 * kMiB, kOwnerPattern, "the allocation after EmptyCache");
    ASSERT_TRUE(allocator_->Free(next).ok());
    ASSERT_TRUE(allocator_->Free(keeper).ok());
  }

  // Right after the allocator's next device synchronization, as another thread would act while
  // it waits there: `late` gets a spinning kernel on s2 and is freed with record_stream, so its
  // free is pending but did not exist when the synchronization began.
  void FreeUnderSpinAfterNextSync(void* late, std::size_t bytes, bool* hook_ran) {
    hooked_->after_synchronize = [this, late, bytes, hook_ran] {
      *hook_ran = true;
      Order(s1_, s2_);
      Spin(late, bytes, s2_);
      ASSERT_TRUE(allocator_->RecordStream(late, H(s2_)).ok());
      ASSERT_TRUE(allocator_->Free(late).ok());
    };
  }

  // The same through the out-of-memory ladder, under a budget that only `late`'s memory could
  // make room in: the request must fail, or (after a wait) get memory the kernel is done with.
  // Unsafe: the ladder takes `late`'s free as complete and hands its memory over at once; the
  // kernel's late write overwrites the owner pattern (or faults, unmapped, in VMM mode).
  void RunOutOfMemoryLadder(VmmMode mode) {
    if (!Make(mode)) GTEST_SKIP() << "no virtual-memory support";
    allocator_->SetBudget(96 * kMiB);
    void* early = Alloc(512 * 1024, s1_);  // small, beside `keeper`: see Run
    void* keeper = Alloc(512 * 1024, s1_);
    void* filler = Alloc(60 * kMiB, s1_);
    void* late = Alloc(32 * kMiB, s1_);
    Fill(late, 32 * kMiB, 0, s1_);
    Order(s1_, s2_);
    Fill(early, 512 * 1024, 0, s2_);
    ASSERT_TRUE(allocator_->RecordStream(early, H(s2_)).ok());
    ASSERT_TRUE(allocator_->Free(early).ok());
    bool hook_ran = false;
    FreeUnderSpinAfterNextSync(late, 32 * kMiB, &hook_ran);
    absl::StatusOr<void*> next = allocator_->Allocate(32 * kMiB, H(s1_));
    ASSERT_TRUE(hook_ran) << "the ladder did not synchronize; the scenario was not exercised";
    // (No still-spinning check: the allocator may wait for `late` on the host, which is safe;
    // the release comes 1.5 s after the hook, the ladder's own work takes microseconds.)
    if (next.ok()) {
      Fill(*next, 32 * kMiB, kOwnerPattern, s1_);
      ExpectHolds(*next, 32 * kMiB, kOwnerPattern, "the allocation the ladder made room for");
      ASSERT_TRUE(allocator_->Free(*next).ok());
    } else {
      EXPECT_TRUE(absl::IsResourceExhausted(next.status())) << next.status();
    }
    ASSERT_TRUE(allocator_->Free(filler).ok());
    ASSERT_TRUE(allocator_->Free(keeper).ok());
  }
};

TEST_F(GpuPendingFreeScenarioTest, BSegmentsOutOfMemoryLadderCompletesOnlyEarlierFrees) {
  RunOutOfMemoryLadder(VmmMode::kOff);
}
TEST_F(GpuPendingFreeScenarioTest, BVmmOutOfMemoryLadderCompletesOnlyEarlierFrees) {
  RunOutOfMemoryLadder(VmmMode::kOn);
}

TEST_F(GpuPendingFreeScenarioTest, BSegmentsEmptyCacheCompletesOnlyEarlierFrees) {
  Run(VmmMode::kOff);
}
TEST_F(GpuPendingFreeScenarioTest, BVmmEmptyCacheCompletesOnlyEarlierFrees) { Run(VmmMode::kOn); }

// c. A released graph pool's memory joins the shared pool only once the graph's replays are
// done. The graph (captured on s1, its kernel the spin kernel writing g) is replayed on s2; g is
// freed and the pool released while the replay spins. Unsafe: the capture stream's next
// allocation gets g's memory and the replay's late write overwrites its owner pattern (VMM
// mode; in segment mode cudaFree's implicit synchronization may hide it).
class GpuGraphPoolScenarioTest : public GpuHazardScenarioTest {
 protected:
  void Run(VmmMode mode) {
    if (!Make(mode)) GTEST_SKIP() << "no virtual-memory support";
    const PoolId pool = 1;
    allocator_->BeginAllocateToPool(pool, GraphCaptureFilter(hooked_.get(), H(s1_)));
    // Relaxed: the allocator may map memory or query events while the capture runs.
    ASSERT_EQ(cudaStreamBeginCapture(s1_, cudaStreamCaptureModeRelaxed), cudaSuccess);
    void* g = Alloc(2 * kMiB, s1_);
    ASSERT_EQ(
        gpu_scenarios::LaunchSpinThenFill(g, 2 * kMiB, kSpinPattern, release_->device_flag(),
                                          kSpinCycleLimit, reinterpret_cast<std::uintptr_t>(s1_)),
        cudaSuccess);
    cudaGraph_t graph = nullptr;
    ASSERT_EQ(cudaStreamEndCapture(s1_, &graph), cudaSuccess);
    cudaGraphExec_t exec = nullptr;
    ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
    ASSERT_TRUE(allocator_->EndAllocateToPool(pool).ok());

    ASSERT_EQ(cudaGraphLaunch(exec, s2_), cudaSuccess);  // the replay, on another stream
    release_->ReleaseAfter(kSpinFor);
    // Checked before the allocator acts: in segment mode the release may cudaFree, which waits
    // for the replay (safe, and then the owner pattern below is intact either way).
    ExpectStillSpinning(s2_, "before g was freed");
    ASSERT_TRUE(allocator_->Free(g).ok());
    ASSERT_TRUE(allocator_->ReleasePool(pool).ok());
    void* next = Alloc(2 * kMiB, s1_);
    Fill(next, 2 * kMiB, kOwnerPattern, s1_);
    ExpectHolds(next, 2 * kMiB, kOwnerPattern, "the allocation after the pool's release");
    ASSERT_TRUE(allocator_->Free(next).ok());
    EXPECT_EQ(cudaGraphExecDestroy(exec), cudaSuccess);
    EXPECT_EQ(cudaGraphDestroy(graph), cudaSuccess);
  }
};

TEST_F(GpuGraphPoolScenarioTest, CVmmReleasedPoolWaitsForItsReplay) { Run(VmmMode::kOn); }
TEST_F(GpuGraphPoolScenarioTest, CSegmentsReleasedPoolWaitsForItsReplay) { Run(VmmMode::kOff); }

// e. After StreamDestroyed(s) (and cudaStreamDestroy, with s's work still spinning), the block
// cached for s serves another stream only after s's last work, without an event recorded on the
// dead handle, and s's memory is released in the end. Unsafe: the borrow records on the dead
// handle and fails (Allocate not ok), or hands the block over at once and the spin kernel's
// late write overwrites its new owner's pattern; the release of `live` unmaps under the kernel
// (sticky error); or s's pages stay reserved after everything was freed and the cache emptied.
class GpuDestroyedStreamScenarioTest : public GpuHazardScenarioTest {
 protected:
  void Run(VmmMode mode) {
    if (!Make(mode)) GTEST_SKIP() << "no virtual-memory support";
    cudaStream_t s = nullptr;
    ASSERT_EQ(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), cudaSuccess);
    void* cached = Alloc(4 * kMiB, s);
    void* live = Alloc(4 * kMiB, s);
    Spin(cached, 4 * kMiB, s);
    Fill(live, 4 * kMiB, kSpinPattern, s);  // after the spin: late as well
    cudaEvent_t s_done;
    ASSERT_EQ(cudaEventCreateWithFlags(&s_done, cudaEventDisableTiming), cudaSuccess);
    ASSERT_EQ(cudaEventRecord(s_done, s), cudaSuccess);
    // Checked before the allocator acts: waiting on the host for s's work later is safe too.
    EXPECT_EQ(cudaEventQuery(s_done), cudaErrorNotReady)
        << "the spin kernel had finished; the scenario was not exercised";
    ASSERT_TRUE(allocator_->Free(cached).ok());
    ASSERT_TRUE(allocator_->StreamDestroyed(H(s)).ok());
    ASSERT_EQ(cudaStreamDestroy(s), cudaSuccess);  // its work still runs to the end

    void* borrowed = Alloc(4 * kMiB, s1_);
    ASSERT_NE(borrowed, nullptr) << "the dead stream's cached block could not be borrowed";
    Fill(borrowed, 4 * kMiB, kOwnerPattern, s1_);
    ASSERT_TRUE(allocator_->Free(live).ok());
    ASSERT_TRUE(allocator_->EmptyCache().ok());
    ExpectHolds(borrowed, 4 * kMiB, kOwnerPattern, "the block borrowed from the dead stream");
    EXPECT_EQ(cudaEventDestroy(s_done), cudaSuccess);

    ASSERT_TRUE(allocator_->Free(borrowed).ok());
    ASSERT_TRUE(allocator_->EmptyCache().ok());
    EXPECT_EQ(allocator_->GetStats().reserved_bytes.all().current, 0)
        << "memory of the dead stream stayed reserved after EmptyCache";
  }
};

TEST_F(GpuDestroyedStreamScenarioTest, ESegmentsDeadStreamsBlocksWaitForItsWork) {
  Run(VmmMode::kOff);
}
TEST_F(GpuDestroyedStreamScenarioTest, EVmmDeadStreamsBlocksWaitForItsWork) { Run(VmmMode::kOn); }

}  // namespace
}  // namespace vramcache
