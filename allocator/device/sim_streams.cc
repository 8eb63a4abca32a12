// Stream and event simulation: in-order streams of work items, events that capture a stream's
// latest item, waits that order one stream after another, and completion under test control.
#include "allocator/device/sim_streams.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_format.h"

namespace vramcache {

namespace {

// Handles CreateStream hands out: far from the small values tests use for implicit streams,
// and shaped like the pointers cudaStream_t values are.
constexpr StreamHandle kFirstCreatedStream = 0x5eed0000;
constexpr StreamHandle kCreatedStreamStride = 0x10;

}  // namespace

SimStreamModel::SimStreamModel(SimCompletion completion, int queries_until_complete,
                               bool reuse_stream_handles)
    : completion_(completion),
      queries_until_complete_(std::max(queries_until_complete, 1)),
      reuse_stream_handles_(reuse_stream_handles),
      next_stream_handle_(kFirstCreatedStream) {}

SimStreamModel::StreamId SimStreamModel::IdentityOf(StreamHandle stream) {
  auto [it, inserted] = identities_.try_emplace(stream, next_identity_);
  if (inserted) streams_[next_identity_++];
  return it->second;
}

std::uint64_t SimStreamModel::SubmitWork(StreamHandle stream) { return Submit(stream, {}, false); }

std::uint64_t SimStreamModel::Submit(StreamHandle stream, std::vector<WorkRef> waits_on,
                                     bool wait_only) {
  const std::uint64_t ticket = next_ticket_++;
  StreamState& state = streams_[IdentityOf(stream)];
  state.last_ticket = ticket;
  if (completion_ == SimCompletion::kImmediate) return ticket;  // done as soon as submitted
  std::erase_if(waits_on, [this](const WorkRef& ref) { return IsComplete(ref); });
  if (wait_only && waits_on.empty() && state.pending.empty()) return ticket;
  state.pending.push_back(WorkItem{ticket, std::move(waits_on), wait_only});
  return ticket;
}

bool SimStreamModel::IsComplete(const WorkRef& ref) const {
  if (ref.ticket == 0) return true;
  auto it = streams_.find(ref.stream);
  if (it == streams_.end()) return true;  // forgotten only once drained
  const std::deque<WorkItem>& pending = it->second.pending;
  return pending.empty() || pending.front().ticket > ref.ticket;
}

void SimStreamModel::CompleteThrough(const WorkRef& target) {
  // Iterative, because chains of waits across streams can be long. Every wait points at work
  // submitted before it (smaller tickets), so there are no cycles and this terminates.
  std::vector<WorkRef> stack = {target};
  while (!stack.empty()) {
    const WorkRef ref = stack.back();
    auto it = streams_.find(ref.stream);
    if (it == streams_.end() || it->second.pending.empty() ||
        it->second.pending.front().ticket > ref.ticket) {
      stack.pop_back();
      continue;
    }
    WorkItem& front = it->second.pending.front();
    auto blocker = std::find_if(front.waits_on.begin(), front.waits_on.end(),
                                [this](const WorkRef& dep) { return !IsComplete(dep); });
    if (blocker != front.waits_on.end()) {
      stack.push_back(*blocker);
    } else {
      it->second.pending.pop_front();
    }
  }
}

void SimStreamModel::Settle() {
  for (bool progressed = true; progressed;) {
    progressed = false;
    for (auto& [id, state] : streams_) {
      while (!state.pending.empty() && state.pending.front().wait_only &&
             std::all_of(state.pending.front().waits_on.begin(),
                         state.pending.front().waits_on.end(),
                         [this](const WorkRef& dep) { return IsComplete(dep); })) {
        state.pending.pop_front();
        progressed = true;
      }
    }
  }
  absl::erase_if(streams_, [](const auto& entry) {
    return entry.second.retired && entry.second.pending.empty();
  });
}

absl::Status SimStreamModel::CompleteWork(StreamHandle stream, std::uint64_t ticket) {
  auto it = identities_.find(stream);
  const std::uint64_t last = it == identities_.end() ? 0 : streams_[it->second].last_ticket;
  if (ticket == 0 || ticket > last) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "SimDevice::CompleteWork: ticket %d was not submitted on stream %#x (its latest ticket "
        "is %d)",
        ticket, stream, last));
  }
  CompleteThrough(WorkRef{it->second, ticket});
  Settle();
  return absl::OkStatus();
}

void SimStreamModel::CompleteStream(StreamHandle stream) {
  auto it = identities_.find(stream);
  if (it == identities_.end()) return;
  CompleteThrough(WorkRef{it->second, streams_[it->second].last_ticket});
  Settle();
}

void SimStreamModel::CompleteAll() {
  std::vector<WorkRef> all;
  all.reserve(streams_.size());
  for (const auto& [id, state] : streams_) all.push_back(WorkRef{id, state.last_ticket});
  for (const WorkRef& ref : all) CompleteThrough(ref);
  Settle();
}

bool SimStreamModel::IsWorkComplete(std::uint64_t ticket) const {
  // Tickets are unique across streams: the item is done when no stream still holds it.
  for (const auto& [id, state] : streams_) {
    for (const WorkItem& item : state.pending) {
      if (item.ticket == ticket) return false;
      if (item.ticket > ticket) break;  // pending items are in ticket order
    }
  }
  return true;
}

std::size_t SimStreamModel::PendingWork() const {
  std::size_t pending = 0;
  for (const auto& [id, state] : streams_) pending += state.pending.size();
  return pending;
}

void SimStreamModel::RetireHandle(StreamHandle stream) {
  auto it = identities_.find(stream);
  if (it == identities_.end()) return;
  streams_[it->second].retired = true;
  identities_.erase(it);
}

StreamHandle SimStreamModel::CreateStream() {
  StreamHandle handle;
  if (reuse_stream_handles_ && !free_handles_.empty()) {
    handle = free_handles_.back();
    free_handles_.pop_back();
  } else {
    do {
      handle = next_stream_handle_;
      next_stream_handle_ += kCreatedStreamStride;
    } while (identities_.contains(handle) || created_handles_.contains(handle));
  }
  // A fresh identity even if the value was used before: nothing orders it after old work.
  RetireHandle(handle);
  IdentityOf(handle);
  created_handles_.insert(handle);
  Settle();
  return handle;
}

absl::Status SimStreamModel::DestroyStream(StreamHandle stream) {
  if (!created_handles_.contains(stream)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "SimDevice::DestroyStream: stream %#x was not created by CreateStream or is already "
        "destroyed",
        stream));
  }
  created_handles_.erase(stream);
  RetireHandle(stream);
  capturing_.erase(stream);
  if (reuse_stream_handles_) free_handles_.push_back(stream);
  Settle();
  return absl::OkStatus();
}

void SimStreamModel::SetCapturing(StreamHandle stream, bool capturing) {
  if (capturing) {
    capturing_.insert(stream);
  } else {
    capturing_.erase(stream);
  }
}

absl::Status SimStreamModel::CheckNoCapture(absl::string_view call) const {
  if (capturing_.empty()) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrFormat(
      "SimDevice::%s: operation not permitted while stream %#x is capturing a CUDA graph "
      "(cudaErrorStreamCaptureUnsupported in global capture mode)",
      call, *capturing_.begin()));
}

EventHandle SimStreamModel::CreateEvent() {
  const EventHandle event = next_event_++;
  events_.emplace(event, EventState{});
  return event;
}

absl::StatusOr<SimStreamModel::EventState*> SimStreamModel::FindEvent(absl::string_view call,
                                                                      EventHandle event) {
  auto it = events_.find(event);
  if (it == events_.end()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "SimDevice::%s: unknown event %#x (never created or already destroyed)", call, event));
  }
  return &it->second;
}

absl::Status SimStreamModel::DestroyEvent(EventHandle event) {
  absl::StatusOr<EventState*> state = FindEvent("DestroyEvent", event);
  if (!state.ok()) return state.status();
  events_.erase(event);
  return absl::OkStatus();
}

absl::Status SimStreamModel::RecordEvent(EventHandle event, StreamHandle stream) {
  absl::StatusOr<EventState*> state = FindEvent("RecordEvent", event);
  if (!state.ok()) return state.status();
  const StreamId id = IdentityOf(stream);
  (*state)->captured = WorkRef{id, streams_[id].last_ticket};
  (*state)->queries_since_record = 0;
  return absl::OkStatus();
}

absl::StatusOr<bool> SimStreamModel::QueryEvent(EventHandle event) {
  absl::StatusOr<EventState*> state = FindEvent("QueryEvent", event);
  if (!state.ok()) return state.status();
  EventState& e = **state;
  if (IsComplete(e.captured)) return true;
  if (completion_ != SimCompletion::kAfterQueries ||
      ++e.queries_since_record < queries_until_complete_) {
    return false;
  }
  // The GPU finished it meanwhile: so did everything it waited on.
  CompleteThrough(e.captured);
  Settle();
  return true;
}

absl::Status SimStreamModel::SynchronizeEvent(EventHandle event) {
  absl::StatusOr<EventState*> state = FindEvent("SynchronizeEvent", event);
  if (!state.ok()) return state.status();
  CompleteThrough((*state)->captured);
  Settle();
  return absl::OkStatus();
}

absl::Status SimStreamModel::StreamWaitEvent(StreamHandle stream, EventHandle event) {
  absl::StatusOr<EventState*> state = FindEvent("StreamWaitEvent", event);
  if (!state.ok()) return state.status();
  if (IsComplete((*state)->captured)) return absl::OkStatus();
  Submit(stream, {(*state)->captured}, /*wait_only=*/true);
  return absl::OkStatus();
}

}  // namespace vramcache
