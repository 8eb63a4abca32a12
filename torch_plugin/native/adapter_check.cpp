// Self-checking program for the adapter on vramcache's simulated device, so that its logic
// (install, stats, snapshot, pools, history, out-of-memory, what is refused) is proven on a
// machine without a GPU; tests/gpu/check_native_compiles.sh builds and runs it. The paths that
// need CUDA itself (current device and stream, cudaMemGetInfo) are left to
// tests/gpu/test_torch_native.py. Exit status 0 when every check holds.
#include <c10/core/Allocator.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/util/Exception.h>

#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "snapshot_from_c.h"
#include "vramcache.h"
#include "vramcache_torch.h"
#include "vramcache_torch_allocator.h"

namespace {

namespace alloc = c10::cuda::CUDACachingAllocator;
using vramcache::torch_adapter::FoldPoolId;
using vramcache::torch_adapter::SnapshotFromC;
using vramcache::torch_adapter::UnfoldPoolId;
using vramcache::torch_adapter::VramcacheAllocator;

constexpr std::size_t kMiB = std::size_t{1} << 20;
int failures = 0;

void Expect(bool ok, const std::string& what) {
  if (!ok) {
    ++failures;
    std::fprintf(stderr, "FAILED: %s\n", what.c_str());
  }
}

// Runs `body`, expecting exception E whose message contains `needle`.
template <typename E>
void ExpectThrows(const std::function<void()>& body, const std::string& needle,
                  const std::string& what) {
  try {
    body();
  } catch (const E& e) {
    const std::string message = e.what();
    Expect(message.find(needle) != std::string::npos,
           what + ": message lacks '" + needle + "': " + message);
    return;
  } catch (const std::exception& e) {
    Expect(false, what + ": wrong exception type: " + e.what());
    return;
  }
  Expect(false, what + ": nothing thrown");
}

void CheckSnapshotConversion() {
  const std::uint64_t handle_3 = 3 | (std::uint64_t{1} << 63);
  const vramcache_block_info blocks[] = {
      {4096, 512, 500, VRAMCACHE_BLOCK_ALLOCATED, 0},
      {4608, 512, 0, VRAMCACHE_BLOCK_PENDING_FREE, 0},
      {5120, 2096128, 0, VRAMCACHE_BLOCK_CACHED, 0},
      {9000000, 20971520, 0, VRAMCACHE_BLOCK_FREE, handle_3},
  };
  const vramcache_segment_info segments[] = {
      {0, 4096, 2097152, reinterpret_cast<void*>(7), 1, 0, 3},
      {1, 9000000, 20971520, nullptr, 0, 3, 1},
  };
  const vramcache_trace_entry traces[] = {
      {0, VRAMCACHE_TRACE_ALLOC, 4096, 512, reinterpret_cast<void*>(7), 12000},
  };
  const vramcache_snapshot taken{VRAMCACHE_SNAPSHOT_VERSION, 2, segments, 4, blocks, 1, traces};
  alloc::SnapshotInfo all = SnapshotFromC(taken, true, 2);
  Expect(all.segments.size() == 2, "snapshot: both segments");
  const auto& s = all.segments[0];
  Expect(s.address == 4096 && s.total_size == 2097152 && !s.is_large && s.requested_size == 500 &&
             s.allocated_size == 512 && s.active_size == 1024 &&
             s.stream == reinterpret_cast<void*>(7) && s.blocks.size() == 3 &&
             s.owner_private_pool_id == c10::MempoolId_t{0, 0},
         "snapshot: segment fields");
  Expect(s.blocks[0].allocated && s.blocks[0].active && s.blocks[0].requested_size == 500,
         "snapshot: allocated block");
  Expect(!s.blocks[1].allocated && s.blocks[1].active, "snapshot: pending free is active");
  Expect(!s.blocks[2].allocated && !s.blocks[2].active, "snapshot: cached block inactive");
  Expect(all.segments[1].is_large && all.segments[1].device == 1 &&
             all.segments[1].owner_private_pool_id == c10::MempoolId_t{0, 3},
         "snapshot: second segment's device, type and pool (from its blocks)");
  Expect(all.device_traces.size() == 2 && all.device_traces[0].size() == 1 &&
             all.device_traces[1].empty() &&
             all.device_traces[0][0].action_ == c10::CachingDeviceAllocator::TraceEntry::ALLOC &&
             all.device_traces[0][0].addr_ == 4096 && all.device_traces[0][0].time_.t_ == 12,
         "snapshot: trace entry, one trace per device");
  Expect(SnapshotFromC(taken, false, 2).device_traces.empty(), "snapshot: no traces asked");
  const vramcache_trace_entry unknown[] = {{0, 99, 0, 0, nullptr, 0}};
  const vramcache_snapshot newer{VRAMCACHE_SNAPSHOT_VERSION, 0, nullptr, 0, nullptr, 1, unknown};
  ExpectThrows<c10::Error>([&] { SnapshotFromC(newer, true, 1); }, "action 99",
                           "snapshot: unknown trace action");
  ExpectThrows<c10::Error>([&] { SnapshotFromC(taken, true, 0); }, "device 0",
                           "snapshot: trace of a device not counted");
}

void CheckPoolIds() {
  Expect(FoldPoolId({5, 0}) == 5, "pool: capture id kept");
  Expect(FoldPoolId({0, 5}) == (5 | (std::uint64_t{1} << 63)), "pool: handle id marked");
  ExpectThrows<c10::Error>([] { FoldPoolId({0, 0}); }, "shared pool", "pool: {0,0}");
  ExpectThrows<c10::Error>([] { FoldPoolId({1, 2}); }, "both sides", "pool: both set");
  for (const c10::MempoolId_t& id : {c10::MempoolId_t{5, 0}, c10::MempoolId_t{0, 5}}) {
    Expect(UnfoldPoolId(FoldPoolId(id)) == id, "pool: unfold inverts fold");
  }
  Expect(UnfoldPoolId(0) == c10::MempoolId_t{0, 0} &&
             UnfoldPoolId(~std::uint64_t{0}) == c10::MempoolId_t{0, 0},
         "pool: common pool and quarantine unfold to {0, 0}");
  ExpectThrows<c10::Error>(
      [] {
        FoldPoolId({std::uint64_t{1} << 63, 0});
      },
      "too large", "pool: too large");
}

void CheckInstall(VramcacheAllocator* a) {
  vramcache::torch::Install("device:sim,sim_capacity:64MiB");
  Expect(vramcache::torch::IsInstalled() && alloc::get() == a, "install: c10 slot holds vramcache");
  Expect(c10::GetAllocator(c10::DeviceType::CUDA) == a, "install: kCUDA allocator is vramcache");
  Expect(a->name() == "vramcache", "install: name");
  vramcache::torch::Install("device:sim,sim_capacity:64MiB");  // same conf: nothing happens
  ExpectThrows<c10::Error>([] { vramcache::torch::Install("budget:1MiB"); }, "already installed",
                           "install: another conf refused");
  Expect(
      vramcache_torch_install("budget:1MiB") == -1 &&
          std::string(vramcache_torch_last_error()).find("already installed") != std::string::npos,
      "install: the C entry point reports the refusal");
  Expect(vramcache_torch_is_installed() == 1, "install: C entry point sees it");
  Expect(std::string(vramcache_torch_built_for()).rfind("2.", 0) == 0, "install: built_for");
  Expect(!a->initialized(), "init: not before PyTorch calls init");
  a->init(1);
  Expect(a->initialized(), "init: initialized after init");
}

void CheckHistoryAndStats(VramcacheAllocator* a) {
  // Before vramcache's first use the configuration may still change: Install's conf stays.
  a->recordHistory(true, nullptr, 1000, alloc::RecordContext::ALL, false, {});
  Expect(a->isHistoryEnabled(), "history: on");
  void* p = a->AllocateOn(1000, 0, nullptr);
  Expect(p != nullptr, "alloc: sim allocation");
  auto stats = a->getDeviceStats(0);
  Expect(stats.allocation[0].current == 1 && stats.requested_bytes[0].current == 1000 &&
             stats.allocated_bytes[0].current >= 1000 && stats.reserved_bytes[0].current > 0,
         "stats: one allocation of 1000 requested bytes");
  Expect(stats.requested_bytes[1].current == 1000 && stats.requested_bytes[2].current == 0,
         "stats: small pool holds it");

  alloc::SnapshotInfo snap = a->snapshot({0, 0}, true);
  bool found = false;
  for (const auto& segment : snap.segments) {
    for (const auto& block : segment.blocks)
      found |= block.allocated && block.requested_size == 1000;
  }
  Expect(found, "snapshot: the live block is there");
  Expect(snap.device_traces.size() == 1 && !snap.device_traces[0].empty() &&
             snap.device_traces[0].back().addr_ == reinterpret_cast<std::uintptr_t>(p),
         "snapshot: the allocation is traced");
  Expect(snap.config_metadata.last_allocator_settings == "device:sim,sim_capacity:64MiB",
         "snapshot: settings are Install's conf");

  a->recordHistory(true, nullptr, 1000, alloc::RecordContext::ALL, false, {});  // already so
  ExpectThrows<c10::Error>(
      [a] { a->recordHistory(false, nullptr, 0, alloc::RecordContext::NEVER, false, {}); },
      "cannot stop recording", "history: cannot stop once in use");
  ExpectThrows<c10::Error>(
      [a] { a->recordHistory(true, nullptr, 10, alloc::RecordContext::ALL, false, {"alloc"}); },
      "cannot skip", "history: skip_actions refused");

  size_t size = 0;
  void* base = a->getBaseAllocation(p, &size);
  Expect(base <= p && static_cast<char*>(p) < static_cast<char*>(base) + size,
         "base allocation holds the pointer");
  int dummy = 0;
  ExpectThrows<c10::Error>([a, &dummy] { a->getBaseAllocation(&dummy, nullptr); }, "not inside",
                           "base allocation of a foreign pointer");

  c10::DataPtr foreign(
      &dummy, &dummy, [](void*) {}, c10::Device(c10::DeviceType::CUDA, 0));
  a->recordStream(foreign,
                  c10::Stream(c10::Stream::DEFAULT, c10::Device(c10::DeviceType::CUDA, 0)));

  a->resetPeakStats(0);
  a->resetAccumulatedStats(0);
  stats = a->getDeviceStats(0);
  Expect(stats.requested_bytes[0].peak == 1000 && stats.requested_bytes[0].allocated == 0,
         "stats: resets");

  a->raw_delete(p);
  Expect(a->getDeviceStats(0).allocation[0].current == 0, "free: raw_delete frees");
  ExpectThrows<c10::Error>([a, p] { a->raw_delete(p); }, "", "free: double free refused");

  size_t largest = 1;  // a guess: no cudaMemGetInfo on this machine
  a->cacheInfo(0, &largest);
  Expect(largest >= 1000, "cacheInfo: the freed block is the largest cached one");
  a->emptyCache({0, 0});
  Expect(a->getDeviceStats(0).reserved_bytes[0].current == 0, "emptyCache returns everything");
}

void CheckPools(VramcacheAllocator* a) {
  int calls = 0;
  a->beginAllocateToPool(0, {0, 7}, [&calls](cudaStream_t) {
    ++calls;
    return true;
  });
  Expect(a->getPoolUseCount(0, {0, 7}) == 1, "pool: one use after begin");
  void* in_pool = a->AllocateOn(4096, 0, nullptr);
  Expect(calls > 0, "pool: the filter is asked");
  ExpectThrows<c10::Error>(
      [a] {
        a->createOrIncrefPool(0, {0, 7}, nullptr);
      },
      "while a capture", "pool: no incref during a capture into it");
  a->endAllocateToPool(0, {0, 7});
  ExpectThrows<c10::Error>(
      [a] {
        a->endAllocateToPool(0, {0, 7});
      },
      "no capture", "pool: end without begin");
  void* outside = a->AllocateOn(4096, 0, nullptr);  // after the capture: the shared pool
  Expect(a->checkPoolLiveAllocations(0, {0, 7}, {in_pool}),
         "pool: checkPoolLiveAllocations sees exactly the pool's live block");
  Expect(!a->checkPoolLiveAllocations(0, {0, 7}, {}), "pool: a live block not expected");
  Expect(!a->checkPoolLiveAllocations(0, {0, 7}, {in_pool, outside}),
         "pool: an expected block that is not the pool's");
  {
    alloc::SnapshotInfo pooled = a->snapshot({0, 7}, false);
    bool holds = false;
    for (const auto& segment : pooled.segments) {
      auto address = static_cast<std::uintptr_t>(segment.address);
      for (const auto& block : segment.blocks) {
        holds |= block.allocated && address == reinterpret_cast<std::uintptr_t>(in_pool);
        address += block.size;
      }
      Expect(segment.owner_private_pool_id == c10::MempoolId_t{0, 7},
             "pool: snapshot(pool) keeps only that pool's segments");
    }
    Expect(holds, "pool: snapshot(pool) holds the pool's live block");
  }
  a->raw_delete(outside);
  a->raw_delete(in_pool);
  Expect(a->checkPoolLiveAllocations(0, {0, 7}, {}), "pool: nothing live after the free");
  a->releasePool(0, {0, 7});
  Expect(a->getPoolUseCount(0, {0, 7}) == 0, "pool: released");
  ExpectThrows<c10::Error>(
      [a] {
        a->releasePool(0, {0, 7});
      },
      "no such private pool", "pool: release too often");

  a->createOrIncrefPool(0, {0, 9}, nullptr);
  Expect(a->getPoolUseCount(0, {0, 9}) == 1, "pool: createOrIncrefPool adds a use");
  a->setUseOnOOM(0, {0, 9}, false);
  ExpectThrows<c10::Error>(
      [a] {
        a->setUseOnOOM(0, {0, 9}, true);
      },
      "use_on_oom", "pool: use_on_oom refused");
  ExpectThrows<c10::Error>([a] { a->setNoSplit(0, {0, 9}); }, "no_split", "pool: no_split");
  Expect(a->getCheckpointState(0, {0, 9}) != nullptr, "pool: checkpoint state");
  ExpectThrows<c10::Error>([a] { a->setCheckpointPoolState(0, nullptr); }, "cudagraph_trees",
                           "pool: checkpoint restore refused with advice");
  a->releasePool(0, {0, 9});
  a->emptyCache({0, 9});
}

void CheckBudgetAndErrors(VramcacheAllocator* a) {
  // PyTorch accepts 0.0 (nothing fits): a cap of (almost) nothing, not an error.
  a->setMemoryFraction(0.0, 0);
  Expect(a->getMemoryFraction(0) < 0.001, "fraction: 0.0 accepted");
  a->setMemoryFraction(0.5, 0);
  Expect(a->getMemoryFraction(0) == 0.5, "fraction: read back");
  ExpectThrows<c10::Error>([a] { a->setMemoryFraction(1.5, 0); }, "outside", "fraction: > 1");

  std::vector<std::size_t> seen;
  a->attachOutOfMemoryObserver(
      [&seen](int64_t device, size_t requested, size_t limit, size_t /*free*/) {
        seen = {static_cast<size_t>(device), requested, limit};
      });
  ExpectThrows<c10::OutOfMemoryError>([a] { a->AllocateOn(40 * kMiB, 0, nullptr); },
                                      "out of memory", "oom: torch's OutOfMemoryError");
  Expect(seen.size() == 3 && seen[0] == 0 && seen[1] == 40 * kMiB && seen[2] == 32 * kMiB,
         "oom: observer gets device, request and the budget");
  Expect(a->getDeviceStats(0).num_ooms == 1, "oom: counted");
  try {
    a->AllocateOn(std::size_t{1} << 62, 0, nullptr);
    Expect(false, "absurd size: nothing thrown");
  } catch (const c10::OutOfMemoryError&) {
    Expect(false, "absurd size: reported as out of memory");
  } catch (const c10::Error& e) {
    Expect(std::string(e.what()).find("larger than any device") != std::string::npos,
           std::string("absurd size: message: ") + e.what());
  }
  ExpectThrows<c10::Error>([a] { a->AllocateOn(16, 5, nullptr); }, "device 5 does not exist",
                           "alloc: bad device");
  ExpectThrows<c10::Error>([a] { a->getDeviceStats(5); }, "device 5", "stats: bad device");
}

void CheckRefusals(VramcacheAllocator* a) {
  a->setUserMetadata("step 3");
  Expect(a->getUserMetadata() == "step 3", "user metadata kept");
  std::string context = "compiled region";
  a->pushCompileContext(context);
  a->popCompileContext();
  a->popCompileContext();  // one too many: harmless, as in PyTorch
  a->recordAnnotation({{"name", "fwd"}});
  ExpectThrows<c10::Error>([a] { a->shareIpcHandle(nullptr); }, "other processes", "ipc share");
  ExpectThrows<c10::Error>([a] { a->getIpcDevPtr("x"); }, "other processes", "ipc open");
  ExpectThrows<c10::Error>([a] { a->attachAllocatorTraceTracker({}); }, "NCCL", "trace tracker");
  ExpectThrows<c10::Error>([a] { a->enable(false); }, "cannot be turned off", "enable(false)");
  a->enable(true);
  Expect(a->isEnabled() && a->getExpandableSegmentSizes(0).empty(), "enabled, no expandable");
}

}  // namespace

int main() {
  CheckSnapshotConversion();
  CheckPoolIds();
  VramcacheAllocator* a = VramcacheAllocator::Instance();
  try {
    CheckInstall(a);
    CheckHistoryAndStats(a);
    CheckPools(a);
    CheckBudgetAndErrors(a);
    CheckRefusals(a);
  } catch (const std::exception& e) {
    Expect(false, std::string("unexpected exception: ") + e.what());
  }
  if (failures == 0) std::printf("adapter_check: all checks passed\n");
  return failures == 0 ? 0 : 1;
}
