// The streams besides its own whose work may still touch an allocated block, which its free
// waits for: record_stream's (this device's streams, or another device's, on which only that
// device's events may be recorded), the allocating stream when it borrowed the block from
// another stream's cache, and a destroyed stream's (the blocks it used are marked, and wait
// for a device synchronization, since no event may be recorded on the dead handle). A plain
// class called with the allocator's lock held, as the chunk pool is.
#pragma once

#include <algorithm>
#include <functional>

#include "absl/container/flat_hash_map.h"
#include "absl/container/inlined_vector.h"
#include "absl/status/status.h"
#include "allocator/core/block.h"
#include "allocator/core/stream_ordered_frees.h"
#include "allocator/device/device.h"

namespace vramcache {

class StreamUses {
 public:
  // `frees` (which knows each stream's device) must outlive this; `ordinal` is this device's.
  StreamUses(int ordinal, StreamOrderedFrees* frees) : ordinal_(ordinal), frees_(frees) {}

  // Other devices, for record_stream with their streams (the registry sets it); null: none.
  void SetPeerDevices(std::function<Device*(int)> resolver) { peer_devices_ = std::move(resolver); }

  // record_stream(`stream`) of allocated block `block` (handed out at `user_ptr`, for the
  // messages): refused while another thread frees it, or for a stream of a device not known;
  // the allocating stream itself is no use (a no-op, as in PyTorch).
  absl::Status Record(Block* block, StreamHandle stream, DevicePtr user_ptr);

  // At the user's free: a block the allocating stream borrowed from another stream's cache is
  // still used by that allocating stream's work, which the owner stream's is not ordered with.
  static void AddBorrower(Block* block) {
    if (block->alloc_stream != block->stream &&
        !Contains(block->stream_uses, block->alloc_stream)) {
      block->stream_uses.push_back(block->alloc_stream);
    }
  }

  // `stream` was destroyed: every allocated block it allocated, owns or used is marked, so that
  // its free waits for a device synchronization instead of an event on the dead handle.
  static void MarkUsedByDestroyed(const absl::flat_hash_map<DevicePtr, Block*>& allocated_or_cached,
                                  StreamHandle stream);

  static bool Contains(const absl::InlinedVector<StreamHandle, 2>& streams, StreamHandle s) {
    return std::find(streams.begin(), streams.end(), s) != streams.end();
  }

 private:
  const int ordinal_;
  StreamOrderedFrees* const frees_;
  std::function<Device*(int)> peer_devices_;
};

}  // namespace vramcache
