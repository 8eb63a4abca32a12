// The streams besides its own that use an allocated block (stream_uses.h).
#include "allocator/core/stream_uses.h"

#include <utility>

#include "absl/strings/str_format.h"

namespace vramcache {

absl::Status StreamUses::Record(Block* block, StreamHandle stream, DevicePtr user_ptr) {
  if (block->freeing) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "vramcache: record_stream of %#x: the allocation is being freed by another thread",
        user_ptr));
  }
  if (stream == block->alloc_stream) return absl::OkStatus();  // PyTorch: a no-op
  // A stream of another device gets that device's event at the free (as PyTorch records it on
  // the stream's device): this device's events may not be recorded on it.
  absl::StatusOr<int> ordinal = frees_->StreamOrdinal(stream);
  if (!ordinal.ok()) return ordinal.status();
  if (*ordinal != ordinal_) {
    Device* peer = peer_devices_ ? peer_devices_(*ordinal) : nullptr;
    if (peer == nullptr) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "vramcache: record_stream of %#x on device %d with stream %#x of device %d: that "
          "device is not known to this allocator (give it one with "
          "CachingAllocator::SetPeerDevices, as the registry does for every device it opens)",
          user_ptr, ordinal_, stream, *ordinal));
    }
    const std::pair<Device*, StreamHandle> use{peer, stream};
    if (std::find(block->foreign_uses.begin(), block->foreign_uses.end(), use) ==
        block->foreign_uses.end()) {
      block->foreign_uses.push_back(use);
    }
    return absl::OkStatus();
  }
  frees_->StreamUsed(stream);  // the handle names a new stream
  if (!Contains(block->stream_uses, stream)) block->stream_uses.push_back(stream);
  return absl::OkStatus();
}

void StreamUses::MarkUsedByDestroyed(
    const absl::flat_hash_map<DevicePtr, Block*>& allocated_or_cached, StreamHandle stream) {
  for (const auto& [addr, block] : allocated_or_cached) {
    if (block->state != BlockState::kAllocated) continue;
    if (block->stream == stream || block->alloc_stream == stream ||
        Contains(block->stream_uses, stream)) {
      block->used_by_destroyed_stream = true;
    }
  }
}

}  // namespace vramcache
