// VramcacheAllocator: PyTorch's CUDAAllocator interface (2.11 to 2.15, see torch_version.h),
// every method answered through vramcache's C ABI. The one instance lives for the whole process
// (PyTorch frees tensors during static destruction, after any static object could have been
// destroyed).
#pragma once

#include <c10/cuda/CUDACachingAllocator.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

#include "torch_version.h"

namespace vramcache::torch_adapter {

namespace alloc = c10::cuda::CUDACachingAllocator;

// PyTorch names private pools by a pair in which one side is set: {capture id, 0} for a graph's
// own pool, {0, handle} for graph_pool_handle() and torch.cuda.MemPool. vramcache takes one
// non-zero 64-bit id: the set side, with the top bit telling which side it was. Raises
// c10::Error for {0, 0} (the shared pool), both sides set, or a side at or above 2^63.
std::uint64_t FoldPoolId(c10::MempoolId_t id);
// FoldPoolId's inverse, for the pools vramcache's snapshot names: {0, 0} for the common pool
// (0) and for the ranges unmap_on_free retired (UINT64_MAX).
c10::MempoolId_t UnfoldPoolId(std::uint64_t pool);

class VramcacheAllocator final : public alloc::CUDAAllocator {
 public:
  static VramcacheAllocator* Instance();

  // The configuration Install() applied ("" for none), kept so that recordHistory can re-apply
  // it with record_history added (vramcache_configure replaces the whole configuration).
  void Configure(const std::string& conf);

  // allocate()'s work with the device and stream given: raises c10::OutOfMemoryError (Python's
  // torch.OutOfMemoryError) with vramcache's report when memory runs out, c10::Error otherwise.
  void* AllocateOn(size_t nbytes, int device, cudaStream_t stream);
  // raw_delete(): the owning device is found whatever the current one is.
  void Free(void* ptr);

  // c10::Allocator
  c10::DataPtr allocate(size_t nbytes) override;
  c10::DeleterFnPtr raw_deleter() const override;
  void copy_data(void* dest, const void* src, std::size_t count) const override;

  // c10::DeviceAllocator
  bool initialized() override;
  void emptyCache(c10::MempoolId_t mempool_id) override;
  c10::CachingDeviceAllocator::DeviceStats getDeviceStats(c10::DeviceIndex device) override;
  void resetAccumulatedStats(c10::DeviceIndex device) override;
  void resetPeakStats(c10::DeviceIndex device) override;

  // CUDAAllocator
  void* raw_alloc(size_t nbytes) override;
  void* raw_alloc_with_stream(size_t nbytes, cudaStream_t stream) override;
  void raw_delete(void* ptr) override;
  void init(int device_count) override;
  double getMemoryFraction(c10::DeviceIndex device) override;
  void setMemoryFraction(double fraction, c10::DeviceIndex device) override;
  std::vector<alloc::StreamSegmentSize> getExpandableSegmentSizes(c10::DeviceIndex device) override;
  void enable(bool value) override;
  bool isEnabled() const override;
  void cacheInfo(c10::DeviceIndex device, size_t* largest_block) override;
  void* getBaseAllocation(void* ptr, size_t* size) override;
  using alloc::CUDAAllocator::recordStream;
  void recordStream(const c10::DataPtr& ptr, c10::cuda::CUDAStream stream) override;
  alloc::SnapshotInfo snapshot(c10::MempoolId_t mempool_id, bool include_traces) override;
  void beginAllocateToPool(c10::DeviceIndex device, c10::MempoolId_t mempool_id,
                           std::function<bool(cudaStream_t)> filter) override;
  void endAllocateToPool(c10::DeviceIndex device, c10::MempoolId_t mempool_id) override;
  void releasePool(c10::DeviceIndex device, c10::MempoolId_t mempool_id) override;
  int getPoolUseCount(c10::DeviceIndex device, c10::MempoolId_t mempool_id) override;
  void createOrIncrefPool(c10::DeviceIndex device, c10::MempoolId_t mempool_id,
                          std::shared_ptr<alloc::CUDAAllocator> allocator) override;
  void setUseOnOOM(c10::DeviceIndex device, c10::MempoolId_t mempool_id, bool use_on_oom) override;
  void setNoSplit(c10::DeviceIndex device, c10::MempoolId_t mempool_id) override;
  bool checkPoolLiveAllocations(
      c10::DeviceIndex device, c10::MempoolId_t mempool_id,
      const std::unordered_set<void*>& expected_live_allocations) override;
  alloc::ShareableHandle shareIpcHandle(void* ptr) override;
  std::shared_ptr<void> getIpcDevPtr(std::string handle) override;
  bool isHistoryEnabled() override;
  void recordAnnotation(const std::vector<std::pair<std::string, std::string>>& md) override;
  void pushCompileContext(std::string& md) override;
  void popCompileContext() override;
  void setUserMetadata(const std::string& metadata) override;
  std::string getUserMetadata() override;
  void recordHistory(bool enabled, alloc::CreateContextFn context_recorder,
                     size_t alloc_trace_max_entries, alloc::RecordContext when, bool clear_history,
                     const std::vector<std::string>& skip_actions) override;
  void attachOutOfMemoryObserver(alloc::OutOfMemoryObserver observer) override;
  void attachAllocatorTraceTracker(alloc::AllocatorTraceTracker tracker) override;
#if VRAMCACHE_TORCH_AT_LEAST(2, 12)
  void attachOomRejectionObserver(alloc::OomRejectionObserver observer) override;
#endif
  // PyTorch's meaning: `dev` may access memory of `dev_to_access` (whose allocator grants it).
  void enablePeerAccess(c10::DeviceIndex dev, c10::DeviceIndex dev_to_access) override;
  cudaError_t memcpyAsync(void* dst, int dst_device, const void* src, int src_device, size_t count,
                          cudaStream_t stream, bool p2p_enabled) override;
  std::shared_ptr<alloc::AllocatorState> getCheckpointState(c10::DeviceIndex device,
                                                            c10::MempoolId_t id) override;
  alloc::CheckpointDelta setCheckpointPoolState(
      c10::DeviceIndex device, std::shared_ptr<alloc::AllocatorState> state) override;
  std::string name() override;

 private:
  // A capture's filter, kept alive while vramcache may call it (until endAllocateToPool).
  struct PoolFilter {
    std::function<bool(cudaStream_t)> filter;
  };
  using PoolKey = std::pair<int, std::uint64_t>;  // (device, folded pool id)
  VramcacheAllocator() = default;

  static void RawDelete(void* ptr);
  static int CallFilter(void* stream, void* ctx);
  static int NeverInPool(void* stream, void* ctx);
  static void OnOutOfMemory(int device, size_t requested, size_t allocated, size_t limit,
                            size_t device_free, void* ctx);
  // Whether vramcache records history now: its traces have entries (every allocation adds one
  // while recording, none otherwise).
  bool HistoryNonEmpty();
  // vramcache_device_count(), raising c10::Error on failure.
  static int DeviceCount();

  std::atomic<bool> initialized_{false};
  std::atomic<int> device_count_{0};

  // std::mutex, not vramcache::Mutex: the adapter builds against PyTorch alone (no Abseil on
  // the machines that JIT-compile it), and these paths are rare (pools, observers, config).
  std::mutex mu_;
  std::string conf_;                                                    // guarded by mu_
  std::optional<bool> history_configured_;                              // guarded by mu_
  std::map<PoolKey, int> pool_uses_;                                    // guarded by mu_
  std::map<PoolKey, std::deque<std::unique_ptr<PoolFilter>>> filters_;  // guarded by mu_
  std::vector<alloc::OutOfMemoryObserver> oom_observers_;               // guarded by mu_
  std::unordered_set<int> oom_hooked_devices_;                          // guarded by mu_
  std::string user_metadata_;                                           // guarded by mu_
  std::vector<std::string> compile_contexts_;                           // guarded by mu_
};

}  // namespace vramcache::torch_adapter
