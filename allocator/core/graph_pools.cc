// CUDA graph pools (graph_pools.h): captures, pool uses, released pools and their wait for a
// device synchronization.
#include "allocator/core/graph_pools.h"

#include <algorithm>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_format.h"

namespace vramcache {

void GraphPools::BeginCapture(PoolId pool, std::function<bool(StreamHandle)> filter) {
  captures_.push_back({pool, std::move(filter)});
  ++private_pool_uses_[pool];
  released_pools_.erase(pool);
}

absl::Status GraphPools::EndCapture(PoolId pool) {
  auto it = std::find_if(captures_.begin(), captures_.end(),
                         [pool](const CaptureToPool& c) { return c.pool == pool; });
  if (it == captures_.end()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("vramcache: end_allocate_to_pool(%d): no capture to that pool", pool));
  }
  captures_.erase(it);
  return absl::OkStatus();
}

absl::StatusOr<bool> GraphPools::DropUse(PoolId pool) {
  auto it = private_pool_uses_.find(pool);
  if (it == private_pool_uses_.end()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("vramcache: release_pool(%d): no such private pool", pool));
  }
  if (--it->second > 0) return false;
  private_pool_uses_.erase(it);
  released_pools_.insert(pool);
  return true;
}

PoolId GraphPools::CapturePoolFor(StreamHandle stream) const {
  for (const CaptureToPool& capture : captures_) {
    if (capture.filter == nullptr || capture.filter(stream)) return capture.pool;
  }
  return kDefaultPool;
}

// A capture on another thread is not seen here; RelaxedCapture makes the allocator's queries
// legal then. The device is asked even with no free pending: the chunk pool may query marks.
bool GraphPools::Capturing(StreamHandle stream) {
  if (!captures_.empty()) return true;
  absl::StatusOr<bool> capturing = device_->IsCapturing(stream);
  return !capturing.ok() || *capturing;
}

bool GraphPools::AnyCapturing(const absl::InlinedVector<StreamHandle, 2>& streams) {
  if (!captures_.empty()) return true;
  for (StreamHandle s : streams) {
    absl::StatusOr<bool> capturing = device_->IsCapturing(s);
    if (!capturing.ok() || *capturing) return true;
  }
  return false;
}

void GraphPools::MarkSynchronized(std::uint64_t synced_through) {
  absl::erase_if(unsynced_pools_,
                 [&](const auto& entry) { return entry.second <= synced_through; });
}

void GraphPools::RejoinSharedPool(BlockHeap& heap,
                                  absl::FunctionRef<void(Segment*)> release_pinned_range) {
  for (auto& [base, segment] : heap.segments()) {
    if (segment->pool_id == kDefaultPool || !released_pools_.contains(segment->pool_id) ||
        unsynced_pools_.contains(segment->pool_id) || !segment->IsWhollyFree()) {
      continue;
    }
    Block* head = segment->head;
    if (segment->pinned) {
      segment->pinned = false;
      release_pinned_range(segment);
    }
    heap.RemoveFreeBlock(head);
    segment->pool_id = kDefaultPool;
    head->pool_id = kDefaultPool;
    heap.AddFreeBlock(head);
  }
}

}  // namespace vramcache
