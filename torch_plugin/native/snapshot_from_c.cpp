// SnapshotInfo from vramcache's snapshot structs: a field-by-field copy. Block states map to
// PyTorch's two flags (allocated, active), and a segment's pool is its blocks' (vramcache keeps
// a private pool's segments to that pool).
#include "snapshot_from_c.h"

#include <c10/util/Exception.h>

#include <utility>
#include <vector>

#include "vramcache_torch_allocator.h"  // UnfoldPoolId

namespace vramcache::torch_adapter {
namespace {

namespace alloc = c10::cuda::CUDACachingAllocator;
using c10::CachingDeviceAllocator::BlockInfo;
using c10::CachingDeviceAllocator::SegmentInfo;
using c10::CachingDeviceAllocator::TraceEntry;

SegmentInfo SegmentFromC(const vramcache_snapshot& snapshot, const vramcache_segment_info& seg) {
  SegmentInfo info;
  info.device = static_cast<c10::DeviceIndex>(seg.device);
  info.address = seg.address;
  info.total_size = seg.size;
  info.stream = static_cast<cudaStream_t>(seg.stream);
  info.is_large = seg.is_small == 0;
  info.is_expandable = false;
  for (std::size_t i = seg.first_block; i < seg.first_block + seg.block_count; ++i) {
    const vramcache_block_info& block = snapshot.blocks[i];
    BlockInfo converted;
    converted.size = block.size;
    converted.requested_size = block.requested_size;
    converted.allocated = block.state == VRAMCACHE_BLOCK_ALLOCATED;
    // Freed but still in use by another stream (record_stream) counts as active, as in PyTorch.
    converted.active = converted.allocated || block.state == VRAMCACHE_BLOCK_PENDING_FREE;
    if (converted.allocated) {
      info.allocated_size += block.size;
      info.requested_size += block.requested_size;
    }
    if (converted.active) info.active_size += block.size;
    if (block.pool != 0) info.owner_private_pool_id = UnfoldPoolId(block.pool);
    info.blocks.push_back(converted);
  }
  return info;
}

TraceEntry::Action ActionFromC(int action) {
  switch (action) {
    case VRAMCACHE_TRACE_ALLOC:
      return TraceEntry::ALLOC;
    case VRAMCACHE_TRACE_FREE_REQUESTED:
      return TraceEntry::FREE_REQUESTED;
    case VRAMCACHE_TRACE_FREE_COMPLETED:
      return TraceEntry::FREE_COMPLETED;
    case VRAMCACHE_TRACE_SEGMENT_ALLOC:
      return TraceEntry::SEGMENT_ALLOC;
    case VRAMCACHE_TRACE_SEGMENT_FREE:
      return TraceEntry::SEGMENT_FREE;
    case VRAMCACHE_TRACE_OOM:
      return TraceEntry::OOM;
    default:
      TORCH_CHECK(false, "vramcache: the snapshot's trace has action ", action,
                  ", which this adapter does not know; the library is newer than the adapter");
  }
}

}  // namespace

TakenSnapshot::TakenSnapshot(bool include_traces)
    : snapshot_(vramcache_snapshot_take(include_traces ? 1 : 0)) {
  TORCH_CHECK(snapshot_ != nullptr, "vramcache_snapshot_take failed: ", vramcache_last_error());
  TORCH_CHECK(snapshot_->version == VRAMCACHE_SNAPSHOT_VERSION, "vramcache: snapshot version ",
              snapshot_->version, ", this adapter reads ", VRAMCACHE_SNAPSHOT_VERSION,
              "; rebuild the adapter against this libvramcache.so");
}

TakenSnapshot::~TakenSnapshot() { vramcache_snapshot_release(snapshot_); }

alloc::SnapshotInfo SnapshotFromC(const vramcache_snapshot& snapshot, bool include_traces,
                                  int device_count) {
  alloc::SnapshotInfo info{};
  info.segments.reserve(snapshot.segment_count);
  for (std::size_t i = 0; i < snapshot.segment_count; ++i) {
    info.segments.push_back(SegmentFromC(snapshot, snapshot.segments[i]));
  }
  if (!include_traces) return info;
  info.device_traces.resize(static_cast<std::size_t>(device_count));
  for (std::size_t i = 0; i < snapshot.trace_count; ++i) {
    const vramcache_trace_entry& entry = snapshot.traces[i];
    TORCH_CHECK(entry.device >= 0 && entry.device < device_count,
                "vramcache: a trace entry of "
                "device ",
                entry.device, " in a snapshot of ", device_count, " devices");
    TraceEntry converted(ActionFromC(entry.action), static_cast<c10::DeviceIndex>(entry.device),
                         entry.address, entry.size, static_cast<cudaStream_t>(entry.stream),
                         /*mempool=*/{0, 0}, /*time=*/0);
    // PyTorch's snapshot() hands traces out with the time already in microseconds (time_.t_).
    converted.time_.t_ = static_cast<time_t>(entry.time_ns / 1000);
    info.device_traces[static_cast<std::size_t>(entry.device)].push_back(std::move(converted));
  }
  return info;
}

}  // namespace vramcache::torch_adapter
