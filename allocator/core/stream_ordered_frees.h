// Stream-ordered frees: a block freed while another stream's work may still use it is kept out
// of every free list until events recorded on those streams have completed (or, where no event
// can prove it, until a device synchronization). This component keeps those pending frees and
// the order numbers a synchronization is measured against, the frees deferred until a capture
// ends (no event may be recorded then), the destroyed streams and the blocks parked for them,
// the recycled events, the safety of borrowing a block cached for another stream, and which
// device each record_stream stream belongs to. It makes only non-blocking device calls (event
// create, record, query, stream wait); the allocator synchronizes the device, with its lock
// dropped, and then tells it how far that synchronization reaches. A completed free goes back
// through the allocator's `return_to_pool` (poison, statistics, backing, coalesce).
// Not thread-safe: called with the allocator's lock held.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/container/inlined_vector.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "allocator/core/block.h"
#include "allocator/core/block_heap.h"
#include "allocator/core/config.h"
#include "allocator/core/stats_ledger.h"
#include "allocator/device/device.h"

namespace vramcache {

// Blocks that must not be reused before `events` complete (one per stream that used them).
// With no events, they wait for the next device-wide synchronization instead.
// `seq` orders them against device synchronizations: a synchronization proves complete only
// the pending frees that existed when it began.
struct PendingFree {
  absl::InlinedVector<Block*, 1> blocks;
  absl::InlinedVector<EventHandle, 2> events;
  std::uint64_t seq = 0;
  // Events of other devices, recorded on their streams (record_stream across devices); each is
  // queried and destroyed through its own device.
  std::vector<std::pair<Device*, EventHandle>> foreign_events;
};

class StreamOrderedFrees {
 public:
  // `device`, `heap` and `ledger` must outlive this. `return_to_pool` takes a block whose free
  // has completed (every other stream's use is over) back into the allocator's free lists.
  StreamOrderedFrees(Device* device, BlockHeap* heap, StatsLedger* ledger,
                     std::function<void(Block*)> return_to_pool)
      : device_(device), heap_(heap), ledger_(ledger), return_to_pool_(std::move(return_to_pool)) {}
  StreamOrderedFrees(const StreamOrderedFrees&) = delete;
  StreamOrderedFrees& operator=(const StreamOrderedFrees&) = delete;

  // ---------------------------------------------------------------- freeing

  // Another stream may still be using the freed `block` (its stream_uses and foreign_uses): an
  // event is recorded on each, and the block is pending until all have completed. When one
  // cannot be recorded the block is kept out of circulation (until a device synchronization, or
  // for good for another device's stream) and the error returned.
  absl::Status DeferFree(Block* block);
  // The freed `block` was used by a destroyed stream, on which no event can be recorded: it is
  // pending until the next device synchronization.
  void AwaitDeviceSynchronization(Block* block);
  // A capture is under way: the freed `block` records its events when the capture ends
  // (CaptureEnded), since an event recorded now would be captured.
  void DeferUntilCaptureEnds(Block* block);
  // The last capture ended: the frees deferred until then record their events now.
  absl::Status CaptureEnded();

  // Returns the pending blocks whose events have all completed (event queries do not block),
  // through return_to_pool (parked ones straight into the heap). `synced_through`: a device
  // synchronization that began after order number `synced_through` was handed out has
  // completed, so that free and every older one are done; frees added since are queried.
  absl::Status ReturnCompleted(std::uint64_t synced_through);

  bool has_pending() const { return !pending_.empty(); }
  // Bytes freed by the user, or parked, that wait for events or a synchronization.
  std::size_t pending_bytes() const { return pending_bytes_; }
  // The newest order number handed out: what a synchronization that begins now covers.
  std::uint64_t newest_order() const { return order_; }
  // A new order number, for a release a synchronization must follow (graph pools).
  std::uint64_t TakeOrder() { return ++order_; }

  // ---------------------------------------------------------------- streams

  // cudaStreamDestroy of `stream` is coming: no event may be recorded on the handle until a new
  // stream gets it, and its device is asked again then. Call ParkFor next.
  void MarkDestroyed(StreamHandle stream);
  // After MarkDestroyed (and after the allocator marked the live blocks `stream` used): pending
  // frees that would return to `stream`'s free list also wait for an event recorded on it now,
  // frees waiting for a capture to end only for a synchronization, and the free blocks cached
  // for it are parked (out of every free list, inactive) behind an event recorded now.
  absl::Status ParkFor(StreamHandle stream);
  // The handle is used again (an allocation or record_stream on it): it names a new stream.
  // Inline: every allocation calls it.
  void StreamUsed(StreamHandle stream) {
    if (!destroyed_streams_.empty()) destroyed_streams_.erase(stream);
  }
  bool IsDestroyed(StreamHandle stream) const {
    return !destroyed_streams_.empty() && destroyed_streams_.contains(stream);
  }
  const absl::flat_hash_set<StreamHandle>& destroyed_streams() const { return destroyed_streams_; }

  // The device of `stream`, asked of the device once per stream: a stream never changes device,
  // and its handle names another stream only after a cudaStreamDestroy, which the allocator is
  // told of (MarkDestroyed forgets the answer). A stream destroyed unannounced is outside the
  // contract here as it is for the blocks cached for it (docs/design.md, "Destroyed streams").
  absl::StatusOr<int> StreamOrdinal(StreamHandle stream);

  // Borrowing: `block`, cached for another stream (its owner), is to serve a request on
  // `stream`. An event recorded now on the owner covers every use it made of the block before
  // freeing it; with kQuery the block is usable only if that event has completed, else `stream`
  // waits on it. A destroyed owner's block waited for its last work when it was parked, so it
  // is usable with no event. False (nothing changed) when the owner captures or the event has
  // not completed.
  absl::StatusOr<bool> OrderAfterOwner(const Block* block, StreamHandle stream,
                                       CrossStreamPolicy policy);

  // Shutdown: every pending and deferred free is forgotten (their memory goes back with the
  // segments); other devices' events are destroyed now, and this device's returned for the
  // caller to destroy once the lock is dropped.
  std::vector<EventHandle> ForgetAll();

 private:
  absl::StatusOr<EventHandle> AcquireEvent();
  void AddPending(PendingFree pending);

  static constexpr std::size_t kMaxKnownStreams = 4096;  // bounds stream_ordinals_

  Device* const device_;
  BlockHeap* const heap_;
  StatsLedger* const ledger_;
  const std::function<void(Block*)> return_to_pool_;
  std::deque<PendingFree> pending_;
  std::uint64_t order_ = 0;  // the newest PendingFree::seq (or release order number)
  std::size_t pending_bytes_ = 0;
  std::vector<Block*> deferred_until_capture_ends_;
  // Blocks freed after another device's stream used them, whose event could not be recorded:
  // out of circulation until shutdown (no synchronization of this device proves them free).
  std::vector<Block*> leaked_foreign_;
  // Streams destroyed whose handle has not been used since: no event may be recorded on them.
  absl::flat_hash_set<StreamHandle> destroyed_streams_;
  // record_stream's streams and their devices (StreamOrdinal).
  absl::flat_hash_map<StreamHandle, int> stream_ordinals_;
  std::vector<EventHandle> event_pool_;  // recorded and completed, ready to record again
};

}  // namespace vramcache
