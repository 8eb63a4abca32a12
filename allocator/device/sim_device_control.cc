// SimDevice's test controls: memory held by other processes, fault injection and the counters
// that tests and the replay tool read.
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "allocator/device/sim_device.h"

namespace vramcache {

void SimDevice::SetExternalUsage(std::size_t bytes) {
  MutexLock lock(&mu_);
  external_bytes_ = bytes;
}

absl::Status SimDevice::SetSynchronizeLatency(absl::Duration latency) {
  if (latency < absl::ZeroDuration() || latency > absl::Seconds(1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("SimDevice::SetSynchronizeLatency: ", absl::FormatDuration(latency),
                     " is not between 0 and 1s"));
  }
  MutexLock lock(&mu_);
  synchronize_latency_ = latency;
  return absl::OkStatus();
}

void SimDevice::FailNext(SimOp op, absl::Status status, int count) {
  MutexLock lock(&mu_);
  faults_.FailNext(op, std::move(status), count);
}

void SimDevice::FailAfter(SimOp op, int successes_first, absl::Status status, int count) {
  MutexLock lock(&mu_);
  faults_.FailAfter(op, successes_first, std::move(status), count);
}

void SimDevice::ClearFailures() {
  MutexLock lock(&mu_);
  faults_.ClearAll();
}

SimCounters SimDevice::Counters() const {
  MutexLock lock(&mu_);
  SimCounters snapshot = counters_;
  snapshot.external_bytes = external_bytes_;
  snapshot.live_mallocs = blocks_.size();
  snapshot.live_chunks = chunks_.size();
  snapshot.live_mappings = mappings_.size();
  snapshot.live_reservations = reservations_.size();
  snapshot.live_events = streams_.LiveEvents();
  snapshot.live_streams = streams_.LiveStreams();
  snapshot.pending_work = streams_.PendingWork();
  snapshot.submitted_work = streams_.SubmittedWork();
  return snapshot;
}

std::size_t SimDevice::HeldBytes() const {
  MutexLock lock(&mu_);
  return counters_.held_bytes;
}

std::size_t SimDevice::LiveMappings() const {
  MutexLock lock(&mu_);
  return mappings_.size();
}

std::size_t SimDevice::LiveReservations() const {
  MutexLock lock(&mu_);
  return reservations_.size();
}

std::size_t SimDevice::LiveChunks() const {
  MutexLock lock(&mu_);
  return chunks_.size();
}

std::size_t SimDevice::LiveMallocs() const {
  MutexLock lock(&mu_);
  return blocks_.size();
}

std::size_t SimDevice::LiveEvents() const {
  MutexLock lock(&mu_);
  return streams_.LiveEvents();
}

std::int64_t SimDevice::Calls(SimOp op) const {
  MutexLock lock(&mu_);
  return counters_.calls[static_cast<std::size_t>(op)];
}

void SimDevice::ResetCallCounts() {
  MutexLock lock(&mu_);
  counters_.calls.fill(0);
  counters_.injected_failures.fill(0);
}

}  // namespace vramcache
