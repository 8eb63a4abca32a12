// SimDevice's events and streams: the Device calls that order and observe work, plus the test
// controls that submit and complete it. The model itself lives in SimStreamModel; this adds the
// lock, the counters, fault injection and the graph-capture rule.
#include <cstdint>
#include <optional>

#include "absl/time/clock.h"
#include "allocator/device/sim_device.h"

namespace vramcache {

absl::StatusOr<EventHandle> SimDevice::CreateEvent() {
  MutexLock lock(&mu_);
  if (absl::Status s = Enter(SimOp::kCreateEvent); !s.ok()) return s;
  return streams_.CreateEvent();
}

absl::Status SimDevice::DestroyEvent(EventHandle event) {
  MutexLock lock(&mu_);
  if (absl::Status s = Enter(SimOp::kDestroyEvent); !s.ok()) return s;
  CheckEvent("DestroyEvent", event);
  return streams_.DestroyEvent(event);
}

absl::Status SimDevice::RecordEvent(EventHandle event, StreamHandle stream) {
  MutexLock lock(&mu_);
  if (absl::Status s = Enter(SimOp::kRecordEvent); !s.ok()) return s;
  CheckEvent("RecordEvent", event);
  CheckStream("RecordEvent", stream);
  return streams_.RecordEvent(event, stream);  // legal on a capturing stream too
}

absl::StatusOr<bool> SimDevice::QueryEvent(EventHandle event) {
  MutexLock lock(&mu_);
  if (absl::Status s = Enter(SimOp::kQueryEvent); !s.ok()) return s;
  CheckEvent("QueryEvent", event);
  if (absl::Status s = CheckNoCapture("QueryEvent"); !s.ok()) return s;
  if (absl::Status s = CheckCapturedEvent("QueryEvent", event, std::nullopt); !s.ok()) return s;
  return streams_.QueryEvent(event);
}

absl::Status SimDevice::SynchronizeEvent(EventHandle event) {
  MutexLock lock(&mu_);
  if (absl::Status s = Enter(SimOp::kSynchronizeEvent); !s.ok()) return s;
  CheckEvent("SynchronizeEvent", event);
  if (absl::Status s = CheckNoCapture("SynchronizeEvent"); !s.ok()) return s;
  if (absl::Status s = CheckCapturedEvent("SynchronizeEvent", event, std::nullopt); !s.ok()) {
    return s;
  }
  return streams_.SynchronizeEvent(event);
}

absl::Status SimDevice::StreamWaitEvent(StreamHandle stream, EventHandle event) {
  MutexLock lock(&mu_);
  if (absl::Status s = Enter(SimOp::kStreamWaitEvent); !s.ok()) return s;
  CheckEvent("StreamWaitEvent", event);
  CheckStream("StreamWaitEvent", stream);
  if (absl::Status s = CheckCapturedEvent("StreamWaitEvent", event, stream); !s.ok()) return s;
  return streams_.StreamWaitEvent(stream, event);
}

absl::Status SimDevice::SynchronizeDevice() {
  MutexLock lock(&mu_);
  if (absl::Status s = Enter(SimOp::kSynchronizeDevice); !s.ok()) return s;
  if (absl::Status s = CheckNoCapture("SynchronizeDevice"); !s.ok()) return s;
  streams_.SynchronizeDevice();
  if (synchronize_latency_ > absl::ZeroDuration()) {
    // Work other threads queue from here on is not covered (SetSynchronizeLatency).
    const absl::Duration latency = synchronize_latency_;
    mu_.Unlock();
    absl::SleepFor(latency);
    mu_.Lock();
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> SimDevice::IsCapturing(StreamHandle stream) {
  MutexLock lock(&mu_);
  if (absl::Status s = Enter(SimOp::kIsCapturing); !s.ok()) return s;
  CheckStream("IsCapturing", stream);
  return streams_.IsCapturing(stream);
}

std::uint64_t SimDevice::SubmitWork(StreamHandle stream) {
  MutexLock lock(&mu_);
  return streams_.SubmitWork(stream);
}

absl::Status SimDevice::CompleteWork(StreamHandle stream, std::uint64_t ticket) {
  MutexLock lock(&mu_);
  return streams_.CompleteWork(stream, ticket);
}

void SimDevice::CompleteStream(StreamHandle stream) {
  MutexLock lock(&mu_);
  streams_.CompleteStream(stream);
}

void SimDevice::CompleteAll() {
  MutexLock lock(&mu_);
  streams_.CompleteAll();
}

bool SimDevice::IsWorkComplete(std::uint64_t ticket) const {
  MutexLock lock(&mu_);
  return streams_.IsWorkComplete(ticket);
}

StreamHandle SimDevice::CreateStream() {
  MutexLock lock(&mu_);
  return streams_.CreateStream();
}

absl::Status SimDevice::DestroyStream(StreamHandle stream) {
  MutexLock lock(&mu_);
  return streams_.DestroyStream(stream);
}

void SimDevice::SetCapturing(StreamHandle stream, bool capturing) {
  MutexLock lock(&mu_);
  streams_.SetCapturing(stream, capturing);
}
}  // namespace vramcache
