// Stream-ordered frees (stream_ordered_frees.h): events recorded at free and queried before
// reuse, order numbers against device synchronizations, destroyed streams and parked blocks.
#include "allocator/core/stream_ordered_frees.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "allocator/core/relaxed_capture.h"

namespace vramcache {

namespace {

bool Contains(const absl::InlinedVector<StreamHandle, 2>& streams, StreamHandle s) {
  return std::find(streams.begin(), streams.end(), s) != streams.end();
}

// Whether `stream` used `block` (home, allocating or record_stream stream).
bool UsedBy(const Block* block, StreamHandle stream) {
  return block->stream == stream || block->alloc_stream == stream ||
         Contains(block->stream_uses, stream);
}

}  // namespace

absl::Status StreamOrderedFrees::DeferFree(Block* block) {
  PendingFree pending{{block}, {}};
  for (StreamHandle use : block->stream_uses) {
    absl::StatusOr<EventHandle> event = AcquireEvent();
    absl::Status s = event.ok() ? device_->RecordEvent(*event, use) : event.status();
    if (!s.ok()) {
      for (EventHandle e : pending.events) event_pool_.push_back(e);
      if (event.ok()) event_pool_.push_back(*event);
      // The block's memory cannot be proven safe: keep it out of circulation until the next
      // device synchronization rather than risk reuse while another stream writes it.
      block->state = BlockState::kPendingFree;
      block->used_by_destroyed_stream = true;  // only a device synchronization frees it now
      pending_bytes_ += block->size;
      AddPending({{block}, {}});
      return absl::InternalError(
          absl::StrCat("vramcache: could not record an event for a cross-stream free; the block is "
                       "quarantined: ",
                       s.message()));
    }
    pending.events.push_back(*event);
  }
  for (const auto& [peer, use] : block->foreign_uses) {
    absl::StatusOr<EventHandle> event = peer->CreateEvent();
    absl::Status s = event.ok() ? peer->RecordEvent(*event, use) : event.status();
    if (!s.ok()) {
      // Not provable: only a synchronization of every device would do; kept out for good.
      if (event.ok()) peer->DestroyEvent(*event).IgnoreError();
      for (EventHandle e : pending.events) event_pool_.push_back(e);
      for (const auto& [d, e] : pending.foreign_events) d->DestroyEvent(e).IgnoreError();
      block->state = BlockState::kPendingFree;
      pending_bytes_ += block->size;
      leaked_foreign_.push_back(block);
      return absl::InternalError(absl::StrCat(
          "vramcache: could not record an event on another device's stream for a free; the "
          "block is quarantined: ",
          s.message()));
    }
    pending.foreign_events.emplace_back(peer, *event);
  }
  block->foreign_uses.clear();
  block->state = BlockState::kPendingFree;
  pending_bytes_ += block->size;
  AddPending(std::move(pending));
  return absl::OkStatus();
}

void StreamOrderedFrees::AwaitDeviceSynchronization(Block* block) {
  block->state = BlockState::kPendingFree;
  pending_bytes_ += block->size;
  AddPending({{block}, {}});
}

void StreamOrderedFrees::DeferUntilCaptureEnds(Block* block) {
  block->state = BlockState::kPendingFree;
  pending_bytes_ += block->size;
  deferred_until_capture_ends_.push_back(block);
}

absl::Status StreamOrderedFrees::CaptureEnded() {
  std::vector<Block*> deferred;
  deferred.swap(deferred_until_capture_ends_);
  absl::Status status = absl::OkStatus();
  for (Block* block : deferred) {
    if (block->used_by_destroyed_stream) {
      AddPending({{block}, {}});  // resolved by the next device synchronization
      continue;
    }
    pending_bytes_ -= block->size;  // DeferFree counts it again
    status.Update(DeferFree(block));
  }
  return status;
}

absl::StatusOr<EventHandle> StreamOrderedFrees::AcquireEvent() {
  if (!event_pool_.empty()) {
    EventHandle event = event_pool_.back();
    event_pool_.pop_back();
    return event;
  }
  // Rare (the pool is empty); relaxed, as Free no longer is as a whole, in case a driver
  // counts event creation among the calls a global-mode capture forbids.
  RelaxedCapture relaxed(device_);
  return device_->CreateEvent();
}

void StreamOrderedFrees::AddPending(PendingFree pending) {
  pending.seq = ++order_;
  pending_.push_back(std::move(pending));
}

absl::Status StreamOrderedFrees::ReturnCompleted(std::uint64_t synced_through) {
  if (pending_.empty()) return absl::OkStatus();
  // Relaxed from the first query on: a global-mode capture on another thread forbids queries.
  std::optional<RelaxedCapture> relaxed;
  for (auto it = pending_.begin(); it != pending_.end();) {
    // A synchronization of this device says nothing about another device's streams.
    const bool synced = it->seq <= synced_through && it->foreign_events.empty();
    bool all_done = synced || !it->events.empty() || !it->foreign_events.empty();
    if (!synced) {
      if (!relaxed.has_value()) relaxed.emplace(device_);
      for (EventHandle event : it->events) {
        absl::StatusOr<bool> done = device_->QueryEvent(event);
        if (!done.ok()) return done.status();
        if (!*done) {
          all_done = false;
          break;
        }
      }
      for (const auto& [peer, event] : it->foreign_events) {
        if (!all_done) break;
        absl::StatusOr<bool> done = peer->QueryEvent(event);
        if (!done.ok()) return done.status();
        all_done = *done;
      }
    }
    if (!all_done) {
      ++it;
      continue;
    }
    for (EventHandle event : it->events) event_pool_.push_back(event);
    for (const auto& [peer, event] : it->foreign_events) peer->DestroyEvent(event).IgnoreError();
    for (Block* block : it->blocks) {
      pending_bytes_ -= block->size;
      block->used_by_destroyed_stream = false;
      if (block->state == BlockState::kParked) {
        // Held nobody's data: no free to complete, only back into its free set.
        ledger_->CountSplitBlock(*block, -1);
        heap_->CoalesceAndInsert(block);
      } else {
        return_to_pool_(block);
      }
    }
    it = pending_.erase(it);
  }
  return absl::OkStatus();
}

void StreamOrderedFrees::MarkDestroyed(StreamHandle stream) {
  destroyed_streams_.insert(stream);
  stream_ordinals_.erase(stream);
}

absl::Status StreamOrderedFrees::ParkFor(StreamHandle stream) {
  // Blocks already waiting (on events of other streams) return to this stream's free list
  // afterwards, where the new stream with this handle would find them: they must also wait
  // for the old stream's work.
  for (PendingFree& pending : pending_) {
    const bool affected = std::any_of(pending.blocks.begin(), pending.blocks.end(),
                                      [&](const Block* b) { return b->stream == stream; });
    if (!affected || pending.events.empty()) continue;
    absl::StatusOr<EventHandle> event = AcquireEvent();
    if (!event.ok()) return event.status();
    if (absl::Status s = device_->RecordEvent(*event, stream); !s.ok()) {
      event_pool_.push_back(*event);
      return s;
    }
    pending.events.push_back(*event);
  }
  // Frees waiting for a capture to end record their events then, on every stream that used
  // them: one that is gone leaves only a device synchronization to wait for.
  for (Block* block : deferred_until_capture_ends_) {
    if (UsedBy(block, stream)) block->used_by_destroyed_stream = true;
  }
  PendingFree parked;
  for (FreeBlockSet* set : {&heap_->small_free(), &heap_->large_free()}) {
    for (Block* block : *set) {
      if (block->stream == stream) parked.blocks.push_back(block);
    }
  }
  if (parked.blocks.empty()) return absl::OkStatus();
  absl::StatusOr<EventHandle> event = AcquireEvent();
  if (!event.ok()) return event.status();
  if (absl::Status s = device_->RecordEvent(*event, stream); !s.ok()) {
    event_pool_.push_back(*event);
    return s;
  }
  parked.events.push_back(*event);
  for (Block* block : parked.blocks) {
    heap_->RemoveFreeBlock(block);
    // Free memory that no request may take before the event completes: inactive (it holds
    // no data of anyone's), still split where it was.
    block->state = BlockState::kParked;
    ledger_->CountSplitBlock(*block, +1);
    pending_bytes_ += block->size;
  }
  AddPending(std::move(parked));
  return absl::OkStatus();
}

absl::StatusOr<int> StreamOrderedFrees::StreamOrdinal(StreamHandle stream) {
  if (auto known = stream_ordinals_.find(stream); known != stream_ordinals_.end()) {
    return known->second;
  }
  absl::StatusOr<int> ordinal = device_->StreamOrdinal(stream);
  if (!ordinal.ok()) return ordinal;
  // Bounded for programs that create streams without end and never announce their end.
  if (stream_ordinals_.size() >= kMaxKnownStreams) stream_ordinals_.clear();
  stream_ordinals_.emplace(stream, *ordinal);
  return ordinal;
}

absl::StatusOr<bool> StreamOrderedFrees::OrderAfterOwner(const Block* block, StreamHandle stream,
                                                         CrossStreamPolicy policy) {
  // Its owner was destroyed: the block waited for the owner's last work before it was cached
  // again (ParkFor), so it is free for anyone, and no event may be recorded on the dead handle.
  if (destroyed_streams_.contains(block->stream)) return true;
  absl::StatusOr<bool> owner_capturing = device_->IsCapturing(block->stream);
  if (!owner_capturing.ok()) return owner_capturing.status();
  if (*owner_capturing) return false;
  absl::StatusOr<EventHandle> event = AcquireEvent();
  if (!event.ok()) return event.status();
  absl::Status status = device_->RecordEvent(*event, block->stream);
  bool usable = status.ok();
  if (usable && policy == CrossStreamPolicy::kQuery) {
    RelaxedCapture relaxed(device_);
    absl::StatusOr<bool> done = device_->QueryEvent(*event);
    status = done.status();
    usable = done.ok() && *done;
  } else if (usable) {
    status = device_->StreamWaitEvent(stream, *event);
    usable = status.ok();
  }
  // A wait captures the event's state when it is issued, so the event can be reused at once.
  event_pool_.push_back(*event);
  if (!status.ok()) return status;
  return usable;
}

std::vector<EventHandle> StreamOrderedFrees::ForgetAll() {
  std::vector<EventHandle> events;
  for (PendingFree& pending : pending_) {
    events.insert(events.end(), pending.events.begin(), pending.events.end());
    for (const auto& [peer, event] : pending.foreign_events) {
      peer->DestroyEvent(event).IgnoreError();
    }
  }
  pending_.clear();
  leaked_foreign_.clear();
  deferred_until_capture_ends_.clear();
  events.insert(events.end(), event_pool_.begin(), event_pool_.end());
  event_pool_.clear();
  pending_bytes_ = 0;
  return events;
}

}  // namespace vramcache
