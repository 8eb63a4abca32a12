// Stream and event simulation: in-order streams of work items, events that capture a stream's
// latest item, waits that order one stream after another, and completion under test control.
#include "allocator/device/sim_streams.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_format.h"
#include "allocator/device/sim_handle_registry.h"

namespace vramcache {

SimStreamModel::SimStreamModel(const SimStreamConfig& config)
    : completion_(config.completion),
      queries_until_complete_(std::max(config.queries_until_complete, 1)),
      reuse_stream_handles_(config.reuse_stream_handles),
      max_work_duration_(std::max(config.max_work_duration, 0)),
      ordinal_(config.ordinal),
      register_events_(config.register_events),
      durations_(config.seed) {}

SimStreamModel::~SimStreamModel() {
  for (StreamHandle stream : created_handles_) ForgetSimStream(stream);
  for (StreamHandle stream : free_handles_) ForgetSimStream(stream);
  if (register_events_) {
    for (const auto& [event, state] : events_) ForgetSimEvent(event);
  }
}

SimStreamModel::StreamId SimStreamModel::IdentityOf(StreamHandle stream) {
  auto [it, inserted] = identities_.try_emplace(stream, next_identity_);
  if (inserted) streams_[next_identity_++];
  return it->second;
}

std::uint64_t SimStreamModel::SubmitWork(StreamHandle stream,
                                         std::shared_ptr<const SimWorkInfo> info) {
  return Submit(stream, {}, false, std::move(info));
}

std::uint64_t SimStreamModel::Submit(StreamHandle stream, std::vector<WorkRef> waits_on,
                                     bool wait_only, std::shared_ptr<const SimWorkInfo> info) {
  const std::uint64_t ticket = next_ticket_++;
  StreamState& state = streams_[IdentityOf(stream)];
  state.last_ticket = ticket;
  if (completion_ == SimCompletion::kImmediate) return ticket;  // done as soon as submitted
  std::erase_if(waits_on, [this](const WorkRef& ref) { return IsComplete(ref); });
  if (wait_only && waits_on.empty() && state.pending.empty()) return ticket;
  std::uint64_t due = 0;
  if (completion_ == SimCompletion::kRandom && !wait_only) {
    due = now_ + std::uniform_int_distribution<std::uint64_t>(
                     0, static_cast<std::uint64_t>(max_work_duration_))(durations_);
  }
  if (info != nullptr) ++pending_with_info_;
  state.pending.push_back(WorkItem{ticket, std::move(waits_on), wait_only, due, std::move(info)});
  return ticket;
}

void SimStreamModel::PopFront(StreamState& state) {
  if (state.pending.front().info != nullptr) --pending_with_info_;
  state.pending.pop_front();
}

void SimStreamModel::TickRandom() {
  ++now_;
  // To a fixed point: completing one stream's item may release another stream's wait. The
  // result does not depend on the order streams are visited in.
  for (bool progressed = true; progressed;) {
    progressed = false;
    for (auto& [id, state] : streams_) {
      while (!state.pending.empty() && state.pending.front().due <= now_ &&
             std::all_of(state.pending.front().waits_on.begin(),
                         state.pending.front().waits_on.end(),
                         [this](const WorkRef& dep) { return IsComplete(dep); })) {
        PopFront(state);
        progressed = true;
      }
    }
  }
  Settle();
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
      PopFront(it->second);
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
        PopFront(state);
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
    // The most recently destroyed first, as CUDA tends to.
    handle = free_handles_.back();
    free_handles_.pop_back();
  } else {
    // Unique in the process, so another device's stream is never mistaken for one of ours.
    do {
      handle = NextSimStreamHandle();
    } while (identities_.contains(handle) || created_handles_.contains(handle));
  }
  // A fresh identity even if the value was used before: nothing orders it after old work.
  RetireHandle(handle);
  IdentityOf(handle);
  created_handles_.insert(handle);
  RegisterSimStream(handle, this, ordinal_);
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
  // Dead until handed out again: a call naming it meanwhile is hazard H4.
  MarkSimStreamDestroyed(stream);
  free_handles_.push_back(stream);  // never handed out again without reuse_stream_handles
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
  // Unique in the process, so another device's event is never mistaken for one of ours.
  const EventHandle event = NextSimEventHandle();
  events_.emplace(event, EventState{});
  if (register_events_) RegisterSimEvent(event, this, ordinal_);
  return event;
}

std::optional<StreamHandle> SimStreamModel::CaptureRecordOf(EventHandle event) const {
  if (capture_records_ == 0) return std::nullopt;  // the common case costs no lookup
  auto it = events_.find(event);
  if (it == events_.end()) return std::nullopt;
  return it->second.capture_record;
}

SimStreamModel::Frontier SimStreamModel::FrontierOf(StreamHandle stream) const {
  Frontier frontier;
  auto id = identities_.find(stream);
  if (id == identities_.end()) return frontier;
  // Worklist of identities whose frontier grew: their pending items up to it may wait on more.
  std::vector<StreamId> grown = {id->second};
  frontier.latest_[id->second] = streams_.at(id->second).last_ticket;
  while (!grown.empty()) {
    const StreamId current = grown.back();
    grown.pop_back();
    auto state = streams_.find(current);
    if (state == streams_.end()) continue;
    const std::uint64_t limit = frontier.latest_[current];
    for (const WorkItem& item : state->second.pending) {
      if (item.ticket > limit) break;
      for (const WorkRef& ref : item.waits_on) {
        std::uint64_t& known = frontier.latest_[ref.stream];
        if (ref.ticket > known) {
          known = ref.ticket;
          grown.push_back(ref.stream);
        }
      }
    }
  }
  return frontier;
}

void SimStreamModel::ForEachPendingInfo(
    const std::function<void(std::uint64_t, std::uint64_t, const SimWorkInfo&)>& visit) const {
  if (pending_with_info_ == 0) return;
  for (const auto& [id, state] : streams_) {
    for (const WorkItem& item : state.pending) {
      if (item.info != nullptr) visit(id, item.ticket, *item.info);
    }
  }
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
  if ((*state)->capture_record.has_value()) --capture_records_;
  events_.erase(event);
  if (register_events_) ForgetSimEvent(event);
  return absl::OkStatus();
}

absl::Status SimStreamModel::RecordEvent(EventHandle event, StreamHandle stream) {
  absl::StatusOr<EventState*> state = FindEvent("RecordEvent", event);
  if (!state.ok()) return state.status();
  const StreamId id = IdentityOf(stream);
  (*state)->captured = WorkRef{id, streams_[id].last_ticket};
  (*state)->queries_since_record = 0;
  if ((*state)->capture_record.has_value()) --capture_records_;
  (*state)->capture_record =
      IsCapturing(stream) ? std::optional<StreamHandle>(stream) : std::nullopt;
  if ((*state)->capture_record.has_value()) ++capture_records_;
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
  Submit(stream, {(*state)->captured}, /*wait_only=*/true, nullptr);
  return absl::OkStatus();
}

}  // namespace vramcache
