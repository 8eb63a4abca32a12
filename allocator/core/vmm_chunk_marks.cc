// Resolving the chunk pool's free marks (vmm_arena.h): a freed page's chunk is ready for another
// page once the event recorded on its stream at the free (its mark) has completed. Marks are
// recorded and grouped where pages are released (vmm_arena.cc); here they are queried (only each
// stream's oldest can be the first to complete: streams run in order), resolved, which makes
// their pages ready in free order, and unlinked, their events kept for the next mark. No event
// is queried while a capture forbids it (QueriesAllowed).
#include <algorithm>
#include <cstdint>
#include <optional>
#include <utility>

#include "absl/container/inlined_vector.h"
#include "allocator/core/relaxed_capture.h"
#include "allocator/core/vmm_arena.h"

namespace vramcache {

absl::StatusOr<bool> ChunkPool::ResolveCompletedMark() {
  // Streams run in order, so only each stream's oldest waiting mark can be the first to
  // complete; the oldest of those is queried first, which keeps the choice reproducible. A mark
  // whose pages are all being taken by an Acquire in progress is not a candidate.
  absl::InlinedVector<std::pair<std::uint64_t, std::uint32_t>, 4> heads;
  for (const StreamMarks& stream : streams_) {
    std::uint32_t g = stream.oldest;
    while (g != kNone && groups_[g].listed == 0) g = groups_[g].newer_in_stream;
    if (g != kNone) heads.emplace_back(groups_[g].seq, g);
  }
  std::sort(heads.begin(), heads.end());
  std::optional<RelaxedCapture> relaxed;
  if (!heads.empty()) relaxed.emplace(device_);
  for (const auto& [seq, g] : heads) {
    absl::StatusOr<bool> done = device_->QueryEvent(groups_[g].event);
    if (!done.ok()) return done.status();
    if (*done) {
      ResolveMark(g);
      return true;
    }
  }
  return false;
}

void ChunkPool::UnlinkMark(std::uint32_t group) {
  FreeGroup& g = groups_[group];
  if (g.older != kNone) {
    groups_[g.older].newer = g.newer;
  } else {
    oldest_mark_ = g.newer;
  }
  if (g.newer != kNone) {
    groups_[g.newer].older = g.older;
  } else {
    newest_mark_ = g.older;
  }
  StreamMarks& stream = streams_[g.stream_slot];
  if (g.older_in_stream != kNone) {
    groups_[g.older_in_stream].newer_in_stream = g.newer_in_stream;
  } else {
    stream.oldest = g.newer_in_stream;
  }
  if (g.newer_in_stream != kNone) {
    groups_[g.newer_in_stream].older_in_stream = g.older_in_stream;
  } else {
    stream.newest = g.older_in_stream;
  }
  g.older = g.newer = g.older_in_stream = g.newer_in_stream = kNone;
  g.waiting = false;
  g.pages = 0;
  --mark_count_;
  spare_events_.push_back(g.event);
}

void ChunkPool::ResolveMark(std::uint32_t group) {
  UnlinkMark(group);
  FreeGroup& g = groups_[group];
  if (g.listed == 0) {
    RecycleGroup(group);
    return;
  }
  // Its listed pages are ready now, in the same order, with the same place in the free order.
  waiting_pages_ -= g.listed;
  ready_pages_ += g.listed;
  ready_.emplace(g.seq, group);
}

void ChunkPool::DropMarkUse(std::uint32_t group, std::uint64_t seq) {
  FreeGroup& g = groups_[group];
  if (!g.waiting || g.seq != seq) return;  // seen complete meanwhile: already retired
  if (--g.pages > 0) return;
  UnlinkMark(group);
  RecycleGroup(group);
}

bool ChunkPool::QueriesAllowed() {
  if (probe_pending_) {
    probe_pending_ = false;
    absl::StatusOr<bool> capturing = device_->IsCapturing(probe_stream_);
    queries_allowed_ = capturing.ok() && !*capturing;
  }
  return queries_allowed_;
}

bool ChunkPool::StreamCaptures(StreamHandle stream) {
  absl::StatusOr<bool> capturing = device_->IsCapturing(stream);
  const bool answer = !capturing.ok() || *capturing;
  if (probe_pending_ && probe_stream_ == stream) {
    probe_pending_ = false;
    queries_allowed_ = !answer;
  }
  return answer;
}

absl::StatusOr<EventHandle> ChunkPool::TakeEvent() {
  // Marks whose pages are never reused would each keep an event: before creating one, see
  // whether the oldest mark has completed and can give its event back.
  if (spare_events_.empty() && oldest_mark_ != kNone && QueriesAllowed()) {
    RelaxedCapture relaxed(device_);
    absl::StatusOr<bool> done = device_->QueryEvent(groups_[oldest_mark_].event);
    if (!done.ok()) return done.status();
    if (*done) ResolveMark(oldest_mark_);
  }
  if (!spare_events_.empty()) {
    const EventHandle event = spare_events_.back();
    spare_events_.pop_back();
    return event;
  }
  // Rare; relaxed, as StreamOrderedFrees::AcquireEvent, in case a driver counts event creation
  // among the calls a global-mode capture forbids.
  RelaxedCapture relaxed(device_);
  absl::StatusOr<EventHandle> event = device_->CreateEvent();
  if (event.ok()) ++counters_.events_created;
  return event;
}

}  // namespace vramcache
