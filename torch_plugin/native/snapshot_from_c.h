// Turns vramcache's snapshot (vramcache_snapshot_take, C structs) into PyTorch's SnapshotInfo,
// the structure torch.cuda.memory._snapshot() and memory_viz read: segments with their blocks
// and private pool, and (when vramcache records history) one trace per device.
#pragma once

#include <c10/cuda/CUDACachingAllocator.h>

#include "vramcache.h"

namespace vramcache::torch_adapter {

// A snapshot taken now and released when this goes away. Raises c10::Error when the library
// cannot take one.
class TakenSnapshot {
 public:
  explicit TakenSnapshot(bool include_traces);
  ~TakenSnapshot();
  TakenSnapshot(const TakenSnapshot&) = delete;
  TakenSnapshot& operator=(const TakenSnapshot&) = delete;
  const vramcache_snapshot& operator*() const { return *snapshot_; }
  const vramcache_snapshot* operator->() const { return snapshot_; }

 private:
  const vramcache_snapshot* snapshot_;
};

// Every segment, whatever its pool; with `include_traces`, `device_count` traces (one per
// device, empty where nothing was recorded). An action PyTorch does not know raises c10::Error.
c10::cuda::CUDACachingAllocator::SnapshotInfo SnapshotFromC(const vramcache_snapshot& snapshot,
                                                            bool include_traces, int device_count);

}  // namespace vramcache::torch_adapter
