// Turns vramcache_snapshot_json()'s document into PyTorch's SnapshotInfo, the structure
// torch.cuda.memory._snapshot() and memory_viz read: segments with their blocks, and (when
// vramcache records history) one trace per device.
#pragma once

#include <c10/cuda/CUDACachingAllocator.h>

#include <string_view>

namespace vramcache::torch_adapter {

// `pool` {0, 0} keeps every segment; another id keeps the segments whose segment_pool_id is that
// id. Without `include_traces`, device_traces stays empty. Malformed text raises c10::Error.
c10::cuda::CUDACachingAllocator::SnapshotInfo SnapshotFromJson(std::string_view json,
                                                               c10::MempoolId_t pool,
                                                               bool include_traces);

}  // namespace vramcache::torch_adapter
